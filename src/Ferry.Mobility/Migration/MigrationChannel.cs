using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Ferry.Mobility.Snapshots;

namespace Ferry.Mobility.Migration;

/// <summary>Frame types of the migration protocol (docs/migration-protocol.md), in the order a migration uses them.</summary>
public enum MigrationFrame : byte
{
    /// <summary>Source to target: migration id, module hash, memory pages, strategy (stage 2, reservation).</summary>
    Offer = 1,
    /// <summary>Target to source: the process is admitted.</summary>
    Admit = 2,
    /// <summary>Target to source: the process is refused, with the reason.</summary>
    Refuse = 3,
    /// <summary>Source to target: a piece of the process image: execution and resource segments, memory page count.</summary>
    Image = 4,
    /// <summary>Source to target: the image is complete; for post-copy, the bitmap of frames still to come.</summary>
    ImageEnd = 5,
    /// <summary>Target to source: the image checked out and the process is restored, not running (stage 5, commitment).</summary>
    Committed = 6,
    /// <summary>Either side: the migration is abandoned, with the reason.</summary>
    Abort = 7,
    /// <summary>Source to target: the source has given up its copy; the target may run the process (stage 6).</summary>
    Activate = 8,
    /// <summary>Source to target: memory frames (pre-copy rounds, stop-and-copy, post-copy push).</summary>
    Frames = 9,
    /// <summary>Source to target: a pre-copy round is complete.</summary>
    RoundEnd = 10,
    /// <summary>Target to source (post-copy): the guest touched this absent frame; send it first.</summary>
    FrameRequest = 11,
    /// <summary>Source to target (post-copy): every frame has been sent.</summary>
    PushEnd = 12,
    /// <summary>Target to source (post-copy): every frame arrived; the window of dependence on the source ends.</summary>
    PushAck = 13,
    /// <summary>Target to source: every frame of this pre-copy round is in place (so a round's time and rate are end to end).</summary>
    RoundAck = 14,
    /// <summary>Target to source (post-copy): the process runs here; the push may begin without competing with the activation.</summary>
    Resumed = 15,
    /// <summary>Target to source (post-copy): frames received so far; the push keeps only a window of frames in flight beyond it.</summary>
    PushProgress = 16,
    /// <summary>Target to source (post-copy): a pushed message failed its checksum; send again every frame still absent here.</summary>
    Resend = 17,
    /// <summary>
    /// Source to target (pre-copy and hybrid, between rounds): functions newly on the process's call stack at a round's
    /// end, innermost first, for the target to translate before the stop.
    /// </summary>
    FunctionsOnStack = 18,
    /// <summary>
    /// Source to target (pre-copy's stop): dirtied frames as the 64-byte lines that changed since the copy the target
    /// holds, each with the checksum of the whole frame as it now reads.
    /// </summary>
    FrameDeltas = 19,
}

/// <summary>A peer that broke the protocol: wrong order, oversized or corrupt frame, unknown type, replayed id.</summary>
public class MigrationProtocolException(string message) : Exception(message);

/// <summary>
/// A frame whose payload fails its checksum. The frame was read whole (its header held, so the connection still frames
/// correctly): a side that can have the payload sent again may carry on; every other side treats it as a protocol error.
/// </summary>
public sealed class MigrationChecksumException(MigrationFrame type) : MigrationProtocolException($"{type} frame fails its checksum")
{
    public MigrationFrame Type { get; } = type;
}

/// <summary>The peer neither sent nor took in a complete frame within the channel's patience: taken for a dead node or a broken link.</summary>
public sealed class PeerSilentException(string message) : IOException(message);

/// <summary>
/// Frames over any duplex stream: type (1 byte), payload length (4), payload, CRC-32C of type, length and payload (4). Lengths
/// are checked before anything is allocated. One sender and one receiver may work at the same time. With
/// <paramref name="patience"/>, a frame not fully received, or not fully taken in by the peer, that long after its receive
/// or send began closes the connection and fails with <see cref="PeerSilentException"/>.
/// </summary>
public sealed class MigrationChannel(Stream stream, TimeSpan? patience = null)
{
    public const int MaxPayload = 4 << 20;

    /// <summary>Bytes written so far, frame overhead included.</summary>
    public long BytesSent => Interlocked.Read(ref _sent);

    /// <summary>
    /// Whether a frame's pieces go out in one gathered write (over a socket: sendmsg with one buffer per piece), so that
    /// a piece costs neither a copy nor a write of its own.
    /// </summary>
    public bool GathersPieces => _socket is not null;

    private readonly Socket? _socket = (stream as NetworkStream)?.Socket;
    private readonly List<ArraySegment<byte>> _gather = [];
    private long _sent;
    // The trailer of the last frame sent ahead of its checksum (SendAsync with none), not sent yet.
    private byte[] _owedTrailer = [];

    /// <summary>Sends one frame whose payload is the concatenation of <paramref name="pieces"/>, each written as it is.</summary>
    public Task SendAsync(MigrationFrame type, IReadOnlyList<ReadOnlyMemory<byte>> pieces, CancellationToken cancel = default) =>
        SendAsync(type, pieces, Checksum(type, pieces), cancel);

    /// <summary>
    /// The trailer of a <paramref name="type"/> frame whose payload is the concatenation of <paramref name="pieces"/>: the
    /// CRC-32C of its header and payload, so that a damaged type or length fails the check as a damaged payload does.
    /// </summary>
    internal static uint Checksum(MigrationFrame type, IReadOnlyList<ReadOnlyMemory<byte>> pieces)
    {
        var length = 0L;
        foreach (var piece in pieces) length += piece.Length;
        Span<byte> header = stackalloc byte[5];
        WriteHeader(header, type, (int)length);
        var crc = new Crc32C();
        crc.Append(header);
        foreach (var piece in pieces) crc.Append(piece.Span);
        return crc.Value;
    }

    private static void WriteHeader(Span<byte> header, MigrationFrame type, int length)
    {
        header[0] = (byte)type;
        BinaryPrimitives.WriteInt32LittleEndian(header[1..], length);
    }

    /// <summary>
    /// As <see cref="SendAsync(MigrationFrame, IReadOnlyList{ReadOnlyMemory{byte}}, CancellationToken)"/>, with the payload's
    /// <paramref name="checksum"/> computed beforehand (by <see cref="Checksum"/>, on another thread, over pieces that have
    /// not changed since). Null: over a socket the frame goes ahead of its checksum, which is computed once the pieces have
    /// gone: the kernel has just read them, so the checksum reads them from this core's cache, not from memory, and no
    /// other thread need compute it beforehand. Its trailer then leads the next frame sent, which the caller sends at once:
    /// the peer cannot finish this frame before. Only for pieces that cannot change before this returns (a held guest's memory).
    /// </summary>
    internal async Task SendAsync(MigrationFrame type, IReadOnlyList<ReadOnlyMemory<byte>> pieces, uint? checksum, CancellationToken cancel)
    {
        var length = 0L;
        foreach (var piece in pieces) length += piece.Length;
        if (length > MaxPayload) throw new ArgumentException($"a {type} frame of {length} bytes exceeds the limit of {MaxPayload}");
        var header = new byte[5];
        WriteHeader(header, type, (int)length);
        var owed = TakeOwedTrailer();
        using var limit = Limit(cancel);
        try
        {
            if (_socket is not null && Gather(owed, header, pieces, checksum is { } known ? Trailer(known) : []))
            {
                await SendGatheredAsync(_socket, owed.Length + 5 + length + (checksum is null ? 0 : 4), limit.Token);
                if (checksum is null) _owedTrailer = Trailer(Checksum(type, pieces));
            }
            else
            {
                await stream.WriteAsync(owed, limit.Token);
                await stream.WriteAsync(header, limit.Token);
                foreach (var piece in pieces) await stream.WriteAsync(piece, limit.Token);
                await stream.WriteAsync(Trailer(checksum ?? Checksum(type, pieces)), limit.Token);
                await stream.FlushAsync(limit.Token);
            }
        }
        catch (OperationCanceledException)
        {
            throw GiveUp(cancel, "took in no complete frame");
        }
        Interlocked.Add(ref _sent, 9 + length);
    }

    private static byte[] Trailer(uint checksum)
    {
        var trailer = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, checksum);
        return trailer;
    }

    public async Task SendAsync(MigrationFrame type, ReadOnlyMemory<byte> payload, CancellationToken cancel = default)
    {
        if (payload.Length > MaxPayload) throw new ArgumentException($"a {type} frame of {payload.Length} bytes exceeds the limit of {MaxPayload}");
        if (payload.Length > CombineLimit)
        {
            // Large frames go out as three writes rather than copying a megabyte to prepend five bytes.
            await SendAsync(type, [payload], cancel);
            return;
        }
        // Small frames in one write: a fault request must not wait behind Nagle's algorithm.
        var length = 9 + payload.Length;
        var owed = TakeOwedTrailer();
        var buffer = ArrayPool<byte>.Shared.Rent(owed.Length + length);
        using var limit = Limit(cancel);
        try
        {
            owed.CopyTo(buffer, 0);
            var frame = buffer.AsSpan(owed.Length, length);
            WriteHeader(frame, type, payload.Length);
            payload.Span.CopyTo(frame[5..]);
            BinaryPrimitives.WriteUInt32LittleEndian(frame[(5 + payload.Length)..], Crc32C.Of(frame[..(5 + payload.Length)]));
            await stream.WriteAsync(buffer.AsMemory(0, owed.Length + length), limit.Token);
            await stream.FlushAsync(limit.Token);
            Interlocked.Add(ref _sent, length);
        }
        catch (OperationCanceledException)
        {
            throw GiveUp(cancel, "took in no complete frame");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A token that fires with <paramref name="cancel"/>, or once one frame has taken the peer longer than the channel's patience.</summary>
    private CancellationTokenSource Limit(CancellationToken cancel)
    {
        var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        if (patience is { } wait) limit.CancelAfter(wait);
        return limit;
    }

    /// <summary>
    /// A send or receive given up midway: the framing is broken, and a scattered read still pending would land in memory its
    /// owner is about to free, so the connection is closed. Returns the cancellation, or the silence that caused it.
    /// </summary>
    private Exception GiveUp(CancellationToken cancel, string what)
    {
        stream.Dispose();
        return cancel.IsCancellationRequested
            ? new OperationCanceledException(cancel)
            : new PeerSilentException($"the peer {what} for {patience!.Value.TotalSeconds:0.#} s: taken for a dead node or a broken link");
    }

    /// <summary>
    /// Lists the trailer still owed, header, pieces and trailer (any of the three empty) for one gathered write; false if a
    /// piece is not an array's (each is written on its own then).
    /// </summary>
    private bool Gather(byte[] owed, byte[] header, IReadOnlyList<ReadOnlyMemory<byte>> pieces, byte[] trailer)
    {
        _gather.Clear();
        if (owed.Length > 0) _gather.Add(owed);
        _gather.Add(header);
        foreach (var piece in pieces)
        {
            if (!MemoryMarshal.TryGetArray(piece, out var segment)) return false;
            if (segment.Count > 0) _gather.Add(segment);
        }
        if (trailer.Length > 0) _gather.Add(trailer);
        return true;
    }

    private byte[] TakeOwedTrailer()
    {
        var owed = _owedTrailer;
        _owedTrailer = [];
        return owed;
    }

    /// <summary>Sends <see cref="_gather"/>, <paramref name="total"/> bytes, resuming after a partial send.</summary>
    private async Task SendGatheredAsync(Socket socket, long total, CancellationToken cancel)
    {
        while (true)
        {
            var sent = await socket.SendAsync(_gather, SocketFlags.None).WaitAsync(cancel);
            total -= sent;
            if (total <= 0) return;
            if (sent == 0) throw new IOException("the connection accepted no more bytes");
            Consume(_gather, sent);
        }
    }

    /// <summary>Drops the first <paramref name="bytes"/> of <paramref name="segments"/>, after a partial gathered send or scattered read.</summary>
    private static void Consume(List<ArraySegment<byte>> segments, int bytes)
    {
        while (segments.Count > 0 && bytes >= segments[0].Count)
        {
            bytes -= segments[0].Count;
            segments.RemoveAt(0);
        }
        if (bytes > 0) segments[0] = segments[0][bytes..];
    }

    /// <summary>Appends the first <paramref name="bytes"/> of <paramref name="segments"/> to <paramref name="crc"/>.</summary>
    private static void AppendFront(ref Crc32C crc, List<ArraySegment<byte>> segments, int bytes)
    {
        for (var i = 0; bytes > 0; i++)
        {
            var piece = segments[i].AsSpan(0, Math.Min(bytes, segments[i].Count));
            crc.Append(piece);
            bytes -= piece.Length;
        }
    }

    /// <summary>Sends an Abort with <paramref name="reason"/> if the peer still listens (within a second); a dead connection is not an error here.</summary>
    public async Task TryAbortAsync(string reason)
    {
        try
        {
            await SendAsync(MigrationFrame.Abort, System.Text.Encoding.UTF8.GetBytes(reason)).WaitAsync(TimeSpan.FromSeconds(1));
        }
        catch (Exception e) when (e is IOException or TimeoutException or System.Net.Sockets.SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The connection is already gone: the peer abandons the migration on its own.
        }
    }

    /// <summary>Closes the connection at once: the peer's next receive fails, rather than waiting for a frame that will not come.</summary>
    public void Close() => stream.Dispose();

    /// <summary>
    /// Closes the connection once the peer has had what was sent: stops sending, then discards what still arrives until the
    /// peer closes too (at most <paramref name="wait"/>). Closing with data unread would reset the connection, and a
    /// reset may reach the peer before the last frame it was sent, such as an Abort with its reason.
    /// </summary>
    public async Task CloseAfterPeerAsync(TimeSpan wait)
    {
        try
        {
            _socket?.Shutdown(SocketShutdown.Send);
            using var timeout = new CancellationTokenSource(wait);
            var sink = new byte[64 << 10];
            while (await stream.ReadAsync(sink, timeout.Token) > 0)
            {
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The peer reset the connection, or kept it open too long: it is closed below either way.
        }
        finally
        {
            stream.Dispose();
        }
    }

    /// <summary>Receives the next frame. Its payload lives in a buffer this channel reuses: consume it before the next receive.</summary>
    public async Task<(MigrationFrame Type, ReadOnlyMemory<byte> Payload)> ReceiveAsync(CancellationToken cancel = default)
    {
        var (type, payload, _) = await ReceiveAsync(null, null, cancel);
        return (type, payload);
    }

    /// <summary>
    /// Receives the next frame, telling <paramref name="headerRead"/> its type before its payload is read; with
    /// <paramref name="placement"/>, over a socket, a Frames message's frames are read straight into place (Placed: the
    /// payload is then only the count and numbers). Its payload lives in a buffer this channel reuses.
    /// </summary>
    private async Task<(MigrationFrame Type, ReadOnlyMemory<byte> Payload, bool Placed)> ReceiveAsync(FrameBatch.Placement? placement, Action<MigrationFrame>? headerRead, CancellationToken cancel)
    {
        using var limit = Limit(cancel);
        try
        {
            return await ReceiveFrameAsync(placement, headerRead, limit.Token);
        }
        catch (OperationCanceledException)
        {
            throw GiveUp(cancel, "sent no complete frame");
        }
    }

    private async Task<(MigrationFrame Type, ReadOnlyMemory<byte> Payload, bool Placed)> ReceiveFrameAsync(FrameBatch.Placement? placement, Action<MigrationFrame>? headerRead, CancellationToken cancel)
    {
        var header = _header;
        await ReadExactly(header, cancel);
        var type = (MigrationFrame)header[0];
        if (!Enum.IsDefined(type)) throw new MigrationProtocolException($"unknown frame type {header[0]}");
        var length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1));
        if (length < 0 || length > MaxPayload) throw new MigrationProtocolException($"{type} frame of {length} bytes exceeds the limit of {MaxPayload}");
        headerRead?.Invoke(type);
        if (_receive.Length < length + 4) _receive = new byte[Math.Max(length + 4, Math.Min(MaxPayload + 4, _receive.Length * 2))];
        if (type == MigrationFrame.Frames && placement is not null && _socket is not null) return (type, await ReceivePlacedAsync(placement, _socket, length, cancel), true);
        var payload = _receive.AsMemory(0, length);
        await ReadExactly(_receive.AsMemory(0, length + 4), cancel);
        var crc = new Crc32C();
        crc.Append(header);
        crc.Append(payload.Span);
        if (BinaryPrimitives.ReadUInt32LittleEndian(_receive.AsSpan(length)) != crc.Value) throw new MigrationChecksumException(type);
        return (type, payload, false);
    }

    /// <summary>
    /// A Frames message of <paramref name="length"/> bytes whose frames go straight into place by one scattered read (no copy
    /// through a buffer); the checksum is verified once they have landed. Returns the count and numbers.
    /// </summary>
    private async Task<ReadOnlyMemory<byte>> ReceivePlacedAsync(FrameBatch.Placement placement, Socket socket, int length, CancellationToken cancel)
    {
        if (length < 4) throw new MigrationProtocolException("a Frames message without its count");
        await ReadExactly(_receive.AsMemory(0, 4), cancel);
        var headLength = FrameBatch.HeadLength(BinaryPrimitives.ReadUInt32LittleEndian(_receive), length);
        await ReadExactly(_receive.AsMemory(4, headLength - 4), cancel);
        var head = _receive.AsMemory(0, headLength);
        var destinations = placement.Place(head.Span);
        long bytes = 0;
        foreach (var destination in destinations) bytes += destination.Count;
        if (headLength + bytes != length) throw new MigrationProtocolException($"a Frames message of {length} bytes does not hold its frames ({bytes} bytes)");
        var crc = new Crc32C();
        crc.Append(_header);
        crc.Append(head.Span);
        _scatter.Clear();
        _scatter.AddRange(destinations);
        for (var left = bytes; left > 0;)
        {
            PollForData();
            var received = await socket.ReceiveAsync(_scatter, SocketFlags.None).WaitAsync(cancel);
            if (received == 0) throw new MigrationProtocolException("the connection closed in the middle of a migration");
            left -= received;
            // Checksummed as they land, while this core's cache still holds them: read back after the whole message, they came from memory.
            AppendFront(ref crc, _scatter, received);
            Consume(_scatter, received);
        }
        await ReadExactly(_trailer, cancel);
        if (BinaryPrimitives.ReadUInt32LittleEndian(_trailer) != crc.Value) throw new MigrationChecksumException(MigrationFrame.Frames);
        return head;
    }

    private const int CombineLimit = 64 << 10;
    private readonly byte[] _header = new byte[5];
    private readonly byte[] _trailer = new byte[4];
    private readonly List<ArraySegment<byte>> _scatter = [];
    private byte[] _receive = new byte[4096];

    /// <summary>Receives a frame that must be one of <paramref name="expected"/> (its payload valid until the next receive).</summary>
    public async Task<(MigrationFrame Type, ReadOnlyMemory<byte> Payload)> ExpectAsync(CancellationToken cancel, params MigrationFrame[] expected)
    {
        var (type, payload, _) = await ExpectAsync(null, null, cancel, expected);
        return (type, payload);
    }

    /// <summary>
    /// Receives a frame that must be one of <paramref name="expected"/>, telling <paramref name="headerRead"/> its type first;
    /// a Frames message's frames may go straight into place through <paramref name="placement"/> (Placed), else they are
    /// in the payload (valid until the next receive).
    /// </summary>
    internal async Task<(MigrationFrame Type, ReadOnlyMemory<byte> Payload, bool Placed)> ExpectAsync(FrameBatch.Placement? placement, Action<MigrationFrame>? headerRead,
        CancellationToken cancel, params MigrationFrame[] expected)
    {
        var frame = await ReceiveAsync(placement, headerRead, cancel);
        if (frame.Type == MigrationFrame.Abort && Array.IndexOf(expected, MigrationFrame.Abort) < 0)
            throw new MigrationProtocolException($"the peer abandoned the migration: {System.Text.Encoding.UTF8.GetString(frame.Payload.Span)}");
        if (Array.IndexOf(expected, frame.Type) < 0) throw new MigrationProtocolException($"expected {string.Join(" or ", expected)}, received {frame.Type}");
        return frame;
    }

    /// <summary>
    /// How long, in all, receives may still poll the socket before they wait for data (see <see cref="PollForData"/>);
    /// zero: they wait at once. A target sets it for a stop that is meant to be short.
    /// </summary>
    public TimeSpan PollBudget { get; set; }

    /// <summary>Time receives spent polling so far.</summary>
    public TimeSpan Polled { get; private set; }

    /// <summary>
    /// While <see cref="PollBudget"/> lasts, polls the socket until data is there, yielding the core between polls, rather
    /// than wait: a wait is woken through the runtime's event thread and then a pool thread, and on 2 cores shared with
    /// the sender the pool thread was seen queued behind it for 1.5 ms while the other core idled. A poller stays
    /// runnable, so it runs on whichever core is free, and it yields to a sender that shares its core. Measured at 256 MiB
    /// moderate, pre-copy, sets of 9 runs interleaved with sets without it: downtime over its frames bound, median 1.76
    /// against 1.88, runs over 2 31 % against 41 % (72 and 54 runs); spinning instead of yielding was worse than waiting (2.83, 56 %).
    /// </summary>
    private void PollForData()
    {
        if (PollBudget <= Polled || _socket is null || _socket.Available > 0) return;
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        var left = PollBudget - Polled;
        while (_socket.Available == 0 && System.Diagnostics.Stopwatch.GetElapsedTime(start) < left) Thread.Yield();
        Polled += System.Diagnostics.Stopwatch.GetElapsedTime(start);
    }

    private async Task ReadExactly(Memory<byte> buffer, CancellationToken cancel)
    {
        PollForData();
        try
        {
            await stream.ReadExactlyAsync(buffer, cancel);
        }
        catch (EndOfStreamException)
        {
            throw new MigrationProtocolException("the connection closed in the middle of a migration");
        }
    }
}
