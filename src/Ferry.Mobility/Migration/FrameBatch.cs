using System.Buffers.Binary;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Migration;

/// <summary>
/// The payload of a Frames message: a count, then records of frame number (u32; bit 31 set: the frame is all zero
/// and no bytes follow) and, for the others, the frame's 4096 bytes.
/// </summary>
internal sealed class FrameBatch
{
    public const int MaxFrames = 256;
    private const uint ZeroFlag = 0x8000_0000;

    private readonly byte[] _buffer = new byte[4 + MaxFrames * (4 + LinearMemory.FrameSize)];
    private int _length = 4;

    public int Count { get; private set; }
    public bool Full => Count == MaxFrames;
    public ReadOnlyMemory<byte> Payload
    {
        get
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_buffer, (uint)Count);
            return _buffer.AsMemory(0, _length);
        }
    }

    /// <summary>Adds a frame's current contents; returns false (and adds nothing) for an all-zero frame when <paramref name="skipZero"/>.</summary>
    public bool Add(long frame, ReadOnlySpan<byte> contents, bool skipZero)
    {
        var zero = contents.IndexOfAnyExcept((byte)0) < 0;
        if (zero && skipZero) return false;
        var record = _buffer.AsSpan(_length);
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)frame | (zero ? ZeroFlag : 0));
        _length += 4;
        if (!zero)
        {
            contents.CopyTo(record[4..]);
            _length += LinearMemory.FrameSize;
        }
        Count++;
        return true;
    }

    public void Clear()
    {
        Count = 0;
        _length = 4;
    }

    /// <summary>Applies a received payload to <paramref name="memory"/>, growing it for frames beyond its end; calls <paramref name="arrived"/> per frame.</summary>
    /// <remarks>With <paramref name="onlyAbsent"/> (post-copy) a frame already present is a protocol error: the guest may have written it since.</remarks>
    public static void Apply(ReadOnlySpan<byte> payload, LinearMemory memory, Action<long>? arrived, bool onlyAbsent = false)
    {
        if (payload.Length < 4) throw new MigrationProtocolException("a Frames message without its count");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(payload);
        if (count > MaxFrames) throw new MigrationProtocolException($"a Frames message of {count} frames exceeds the limit of {MaxFrames}");
        var at = 4;
        for (var i = 0; i < count; i++)
        {
            if (payload.Length - at < 4) throw new MigrationProtocolException("a Frames message is cut short");
            var word = BinaryPrimitives.ReadUInt32LittleEndian(payload[at..]);
            at += 4;
            long frame = word & ~ZeroFlag;
            if (frame >= (long)memory.MaxPages * LinearMemory.FramesPerPage) throw new MigrationProtocolException($"frame {frame} lies beyond the memory's maximum of {memory.MaxPages} pages");
            if (frame >= memory.FrameCount && memory.Grow((uint)(frame / LinearMemory.FramesPerPage + 1 - memory.Pages)) < 0)
                throw new MigrationProtocolException($"memory cannot grow to hold frame {frame}");
            if (onlyAbsent && memory.Present.Get(frame)) throw new MigrationProtocolException($"frame {frame} arrived although it is present: a frame is sent once");
            if ((word & ZeroFlag) != 0)
            {
                memory.WriteFrame(frame, ZeroFrame);
            }
            else
            {
                if (payload.Length - at < LinearMemory.FrameSize) throw new MigrationProtocolException("a Frames message is cut short");
                memory.WriteFrame(frame, payload.Slice(at, LinearMemory.FrameSize));
                at += LinearMemory.FrameSize;
            }
            arrived?.Invoke(frame);
        }
        if (at != payload.Length) throw new MigrationProtocolException("a Frames message has bytes after its last frame");
    }

    private static readonly byte[] ZeroFrame = new byte[LinearMemory.FrameSize];
}
