using System.Buffers.Binary;
using System.Numerics;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Migration;

/// <summary>
/// The payload of a FrameDeltas message (pre-copy's stop): a count, then per frame its number u32, a u64 with one bit
/// per 64-byte line written since the copy the target holds, then those lines' bytes in order. A frame with most of
/// its lines written goes whole in a Frames message instead.
/// </summary>
internal sealed class FrameDeltaBatch
{
    public const int MaxFrames = 256;
    /// <summary>The most lines a frame may have written to go as a delta: beyond half, one copy of the whole frame costs less than a copy per line.</summary>
    public const int MaxLines = LinearMemory.FrameSize / LineSize / 2;
    private const int LineSize = DirtyLineMap.LineSize;
    private const int EntryHead = 4 + 8;

    private readonly byte[] _payload = new byte[4 + MaxFrames * (EntryHead + MaxLines * LineSize)];
    private int _length = 4;

    public int Count { get; private set; }

    public ReadOnlyMemory<byte> Payload
    {
        get
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_payload, (uint)Count);
            return _payload.AsMemory(0, _length);
        }
    }

    /// <summary>
    /// Adds <paramref name="frame"/> of <paramref name="memory"/> as the lines set in <paramref name="written"/>; returns
    /// false (and adds nothing) when more than <see cref="MaxLines"/> are.
    /// </summary>
    public bool TryAdd(LinearMemory memory, long frame, ulong written)
    {
        if (BitOperations.PopCount(written) > MaxLines) return false;
        var contents = memory.Frame(frame);
        var entry = _payload.AsSpan(_length);
        BinaryPrimitives.WriteUInt32LittleEndian(entry, (uint)frame);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[4..], written);
        var at = EntryHead;
        for (var lines = written; lines != 0; lines &= lines - 1)
        {
            contents.Slice(BitOperations.TrailingZeroCount(lines) * LineSize, LineSize).CopyTo(entry[at..]);
            at += LineSize;
        }
        _length += at;
        Count++;
        return true;
    }

    public void Clear()
    {
        Count = 0;
        _length = 4;
    }

    /// <summary>Patches <paramref name="memory"/> with a received payload, frame by frame.</summary>
    public static void Apply(ReadOnlySpan<byte> payload, LinearMemory memory)
    {
        if (payload.Length < 4) throw new MigrationProtocolException("a FrameDeltas message without its count");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(payload);
        if (count > MaxFrames) throw new MigrationProtocolException($"a FrameDeltas message of {count} frames exceeds the limit of {MaxFrames}");
        var rest = payload[4..];
        for (var i = 0; i < count; i++)
        {
            if (rest.Length < EntryHead) throw new MigrationProtocolException("a FrameDeltas message is cut short");
            long frame = BinaryPrimitives.ReadUInt32LittleEndian(rest);
            var written = BinaryPrimitives.ReadUInt64LittleEndian(rest[4..]);
            var lines = BitOperations.PopCount(written);
            if (frame >= memory.FrameCount) throw new MigrationProtocolException($"a delta for frame {frame}, beyond the {memory.FrameCount} frames of the image");
            if (lines > MaxLines) throw new MigrationProtocolException($"a delta of {lines} lines for frame {frame}, more than {MaxLines}");
            if (rest.Length < EntryHead + lines * LineSize) throw new MigrationProtocolException("a FrameDeltas message is cut short");
            var target = memory.FrameToReceive(frame).AsSpan();
            var data = rest.Slice(EntryHead, lines * LineSize);
            for (var bits = written; bits != 0; bits &= bits - 1)
            {
                data[..LineSize].CopyTo(target.Slice(BitOperations.TrailingZeroCount(bits) * LineSize, LineSize));
                data = data[LineSize..];
            }
            rest = rest[(EntryHead + lines * LineSize)..];
        }
        if (rest.Length != 0) throw new MigrationProtocolException("a FrameDeltas message has bytes after its last frame");
    }
}
