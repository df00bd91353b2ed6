namespace Ferry.Cli.Commands;

/// <summary>
/// The guest's standard output and error, remembering whether what the guest last wrote where Ferry reports (stderr)
/// ended its line: Ferry's closing message (out of fuel, stopped, trapped) then begins on a line of its own instead of
/// after a guest's unfinished progress line.
/// </summary>
internal sealed class GuestConsole
{
    private volatile bool _midLine;

    public GuestConsole()
    {
        // Stdout counts only where it lands with stderr: both on the terminal, or both redirected (as by 2>&1).
        var stdoutBesideStderr = Console.IsOutputRedirected == Console.IsErrorRedirected;
        Stdout = stdoutBesideStderr ? new LineWatch(Console.OpenStandardOutput(), this) : Console.OpenStandardOutput();
        Stderr = new LineWatch(Console.OpenStandardError(), this);
    }

    public Stream Stdout { get; }
    public Stream Stderr { get; }

    /// <summary>Ends the guest's unfinished line, if it left one, before Ferry writes its own.</summary>
    public void EndGuestLine()
    {
        if (!_midLine) return;
        Console.Error.WriteLine();
        _midLine = false;
    }

    /// <summary>A write-through stream that notes whether each write ended with a newline.</summary>
    private sealed class LineWatch(Stream inner, GuestConsole console) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            if (buffer.Length > 0) console._midLine = buffer[^1] != (byte)'\n';
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
