using System.Buffers.Binary;
using Ferry.Mobility.Snapshots;

namespace Ferry.Mobility.Migration;

/// <summary>Frame types of the migration protocol, in the order a migration uses them.</summary>
public enum MigrationFrame : byte
{
    /// <summary>Source to target: migration id, strategy, module hash, memory pages (stage 2, reservation).</summary>
    Offer = 1,
    /// <summary>Target to source: the process is admitted.</summary>
    Admit = 2,
    /// <summary>Target to source: the process is refused, with the reason.</summary>
    Refuse = 3,
    /// <summary>Source to target: a piece of the process image (stage 4, stop-and-copy).</summary>
    Image = 4,
    /// <summary>Source to target: the image is complete.</summary>
    ImageEnd = 5,
    /// <summary>Target to source: the image checked out and the process is restored (stage 5, commitment).</summary>
    Committed = 6,
    /// <summary>Either side: the migration is abandoned, with the reason.</summary>
    Abort = 7,
    /// <summary>Source to target: the source has given up its copy; the target may run the process (stage 6).</summary>
    Activate = 8,
}

/// <summary>A peer that broke the protocol: wrong order, oversized or corrupt frame, unknown type, replayed id.</summary>
public sealed class MigrationProtocolException(string message) : Exception(message);

/// <summary>
/// Frames over any duplex stream: type (1 byte), payload length (4), payload, CRC-32C of the payload (4).
/// Lengths are checked before anything is allocated.
/// </summary>
public sealed class MigrationChannel(Stream stream)
{
    public const int MaxPayload = 4 << 20;

    public async Task SendAsync(MigrationFrame type, ReadOnlyMemory<byte> payload, CancellationToken cancel = default)
    {
        var header = new byte[5];
        header[0] = (byte)type;
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(1), payload.Length);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, Crc32C.Of(payload.Span));
        await stream.WriteAsync(header, cancel);
        await stream.WriteAsync(payload, cancel);
        await stream.WriteAsync(crc, cancel);
        await stream.FlushAsync(cancel);
    }

    public async Task<(MigrationFrame Type, byte[] Payload)> ReceiveAsync(CancellationToken cancel = default)
    {
        var header = new byte[5];
        await ReadExactly(header, cancel);
        var type = (MigrationFrame)header[0];
        if (!Enum.IsDefined(type)) throw new MigrationProtocolException($"unknown frame type {header[0]}");
        var length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1));
        if (length < 0 || length > MaxPayload) throw new MigrationProtocolException($"{type} frame of {length} bytes exceeds the limit of {MaxPayload}");
        var payload = new byte[length];
        await ReadExactly(payload, cancel);
        var crc = new byte[4];
        await ReadExactly(crc, cancel);
        if (BinaryPrimitives.ReadUInt32LittleEndian(crc) != Crc32C.Of(payload)) throw new MigrationProtocolException($"{type} frame fails its checksum");
        return (type, payload);
    }

    /// <summary>Receives a frame that must be one of <paramref name="expected"/>.</summary>
    public async Task<(MigrationFrame Type, byte[] Payload)> ExpectAsync(CancellationToken cancel, params MigrationFrame[] expected)
    {
        var frame = await ReceiveAsync(cancel);
        if (!expected.Contains(frame.Type)) throw new MigrationProtocolException($"expected {string.Join(" or ", expected)}, received {frame.Type}");
        return frame;
    }

    private async Task ReadExactly(byte[] buffer, CancellationToken cancel)
    {
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
