namespace Ferry.Node.Processes;

/// <summary>One chunk of a process's output: which stream, where in it, and the bytes.</summary>
public sealed record OutputChunk(int Stream, long Sequence, byte[] Data);

/// <summary>
/// A process's stdout and stderr as sequence-numbered chunks (invariant 2). It keeps the most recent
/// <see cref="RetainedBytes"/> bytes; older chunks are dropped, but sequence numbers never restart.
/// </summary>
public sealed class OutputLog(long retainedBytes)
{
    private readonly LinkedList<OutputChunk> _chunks = new();
    private readonly long[] _next = new long[3];
    private readonly long[] _startedAt = new long[3];
    private long _bytes;
    private bool _closed;
    private bool _awaitingEarlier;

    public long RetainedBytes { get; } = retainedBytes;

    /// <summary>A stream for the process to write <paramref name="stream"/> (1 stdout, 2 stderr) into.</summary>
    public Stream Writer(int stream) => new LogStream(this, stream);

    public void Append(int stream, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        lock (_chunks)
        {
            _chunks.AddLast(new OutputChunk(stream, _next[stream], data.ToArray()));
            _next[stream] += data.Length;
            _bytes += data.Length;
            Trim();
            Monitor.PulseAll(_chunks);
        }
    }

    private void Trim()
    {
        while (_bytes > RetainedBytes && _chunks.First is { } oldest)
        {
            _bytes -= oldest.Value.Data.Length;
            _chunks.RemoveFirst();
        }
    }

    /// <summary>
    /// Continues a log kept elsewhere (a migrated process): the next bytes of each stream get these sequence numbers.
    /// Until <see cref="LoadEarlier"/> brings the output written there (or <see cref="StopAwaitingEarlier"/>), a
    /// reader behind these numbers waits rather than skip what it has not seen.
    /// </summary>
    public void StartAt(long stdout, long stderr)
    {
        lock (_chunks)
        {
            _next[1] = _startedAt[1] = Math.Max(_next[1], stdout);
            _next[2] = _startedAt[2] = Math.Max(_next[2], stderr);
            _awaitingEarlier = true;
        }
    }

    /// <summary>Takes the output the process wrote before it came here (in <see cref="SaveTo"/>'s format), ahead of what it wrote since.</summary>
    public void LoadEarlier(Stream source)
    {
        var earlier = new OutputLog(RetainedBytes);
        earlier.LoadFrom(source);
        lock (_chunks)
        {
            for (var chunk = earlier._chunks.Last; chunk is not null; chunk = chunk.Previous)
            {
                if (chunk.Value.Sequence + chunk.Value.Data.Length > _startedAt[chunk.Value.Stream]) continue;
                _chunks.AddFirst(chunk.Value);
                _bytes += chunk.Value.Data.Length;
            }
            Trim();
            _awaitingEarlier = false;
            Monitor.PulseAll(_chunks);
        }
    }

    /// <summary>The earlier output is not coming (its node is gone): readers behind the start get what is here.</summary>
    public void StopAwaitingEarlier()
    {
        lock (_chunks)
        {
            _awaitingEarlier = false;
            Monitor.PulseAll(_chunks);
        }
    }

    /// <summary>The sequence numbers the next bytes of stdout and stderr will get.</summary>
    public (long Stdout, long Stderr) Next
    {
        get
        {
            lock (_chunks) return (_next[1], _next[2]);
        }
    }

    /// <summary>No more output will come (the process ended).</summary>
    public void Close()
    {
        lock (_chunks)
        {
            _closed = true;
            Monitor.PulseAll(_chunks);
        }
    }

    /// <summary>
    /// Chunks after the given per-stream positions; with <paramref name="wait"/>, blocks until there is one or the log closes.
    /// </summary>
    public (List<OutputChunk> Chunks, bool Closed) Read(long stdoutFrom, long stderrFrom, TimeSpan wait)
    {
        lock (_chunks)
        {
            var deadline = DateTime.UtcNow + wait;
            while (true)
            {
                if (_awaitingEarlier && (stdoutFrom < _startedAt[1] || stderrFrom < _startedAt[2]))
                {
                    if (DateTime.UtcNow >= deadline) return ([], false);
                    Monitor.Wait(_chunks, deadline - DateTime.UtcNow);
                    continue;
                }
                var chunks = _chunks.Where(c => c.Sequence + c.Data.Length > (c.Stream == 1 ? stdoutFrom : stderrFrom)).ToList();
                if (chunks.Count > 0 || _closed || DateTime.UtcNow >= deadline) return (chunks, _closed);
                Monitor.Wait(_chunks, deadline - DateTime.UtcNow);
            }
        }
    }

    /// <summary>Writes the retained chunks and the next sequence numbers, so a restarted node continues the same log.</summary>
    public void SaveTo(Stream target)
    {
        lock (_chunks)
        {
            using var writer = new BinaryWriter(target, System.Text.Encoding.UTF8, leaveOpen: true);
            writer.Write(_next[1]);
            writer.Write(_next[2]);
            writer.Write(_chunks.Count);
            foreach (var chunk in _chunks)
            {
                writer.Write((byte)chunk.Stream);
                writer.Write(chunk.Sequence);
                writer.Write(chunk.Data.Length);
                writer.Write(chunk.Data);
            }
        }
    }

    /// <summary>Reads what <see cref="SaveTo"/> wrote into this (empty) log.</summary>
    public void LoadFrom(Stream source)
    {
        using var reader = new BinaryReader(source, System.Text.Encoding.UTF8, leaveOpen: true);
        lock (_chunks)
        {
            _next[1] = reader.ReadInt64();
            _next[2] = reader.ReadInt64();
            for (var count = reader.ReadInt32(); count > 0; count--)
            {
                var stream = reader.ReadByte();
                var sequence = reader.ReadInt64();
                var length = reader.ReadInt32();
                if (stream is not (1 or 2) || length < 0 || length > RetainedBytes) throw new InvalidDataException("corrupt output log");
                _chunks.AddLast(new OutputChunk(stream, sequence, reader.ReadBytes(length)));
                _bytes += length;
            }
        }
    }

    private sealed class LogStream(OutputLog log, int stream) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => log.Append(stream, buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer) => log.Append(stream, buffer);
    }
}
