using System.Buffers.Binary;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Migration;

/// <summary>
/// A set of memory frames on the wire (post-copy's ImageEnd: the frames still to come; Resend: the frames still absent):
/// the frame count i64, then one bit per frame, 64 to a little-endian u64.
/// </summary>
internal static class FrameSetPayload
{
    public static byte[] Encode(ulong[] frames, long frameCount)
    {
        var words = (frameCount + 63) >> 6;
        var payload = new byte[8 + words * 8];
        BinaryPrimitives.WriteInt64LittleEndian(payload, frameCount);
        for (var i = 0; i < words; i++) BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(8 + i * 8), i < frames.Length ? frames[i] : 0);
        return payload;
    }

    /// <summary>The frame count and bits of <paramref name="payload"/>, checked for size (a <paramref name="what"/> names it in the error).</summary>
    public static (long FrameCount, ulong[] Frames) Parse(ReadOnlySpan<byte> payload, string what)
    {
        if (payload.Length < 8) throw new MigrationProtocolException($"{what} without its frame bitmap");
        var count = BinaryPrimitives.ReadInt64LittleEndian(payload);
        if (count < 0 || count > (long)LinearMemory.MaxSupportedPages * LinearMemory.FramesPerPage || payload.Length != 8 + ((count + 63) >> 6) * 8)
            throw new MigrationProtocolException($"{what} with a bitmap of {payload.Length} bytes for {count} frames");
        var bits = new ulong[(count + 63) >> 6];
        for (var i = 0; i < bits.Length; i++) bits[i] = BinaryPrimitives.ReadUInt64LittleEndian(payload[(8 + i * 8)..]);
        return (count, bits);
    }
}
