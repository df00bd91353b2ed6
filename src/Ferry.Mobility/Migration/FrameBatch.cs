using System.Buffers.Binary;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Migration;

/// <summary>What a Frames message does with a frame that is all zero.</summary>
internal enum ZeroFrames
{
    /// <summary>Left out: the target's memory is zero where nothing was sent (round 0, stop-and-copy).</summary>
    Skipped,
    /// <summary>Sent as its number, flagged, without its bytes (later rounds, post-copy).</summary>
    Flagged,
    /// <summary>
    /// Not looked for: every frame goes with its bytes (pre-copy's stop). The check reads each frame from memory before the
    /// kernel does, and there it cost 0.13 ms per MiB of a 0.9 ms per MiB stop, to spare the bytes of a rare dirtied zero frame.
    /// </summary>
    Sent,
}

/// <summary>
/// The payload of a Frames message: a count, the frame numbers (u32 each; bit 31 set: the frame is all zero and has no
/// bytes), then the 4096 bytes of each other frame in the same order. Numbers come first so that the bytes of adjacent
/// frames stay adjacent: while the guest is held they go out straight from its memory, uncopied.
/// </summary>
internal sealed class FrameBatch(bool gathered)
{
    public const int MaxFrames = 256;
    private const uint ZeroFlag = 0x8000_0000;

    // Over a gathered write every frame may stay in place; otherwise a run shorter than 8 frames is copied, as a write per
    // frame would cost more than the copy.
    private readonly int _minRunInPlace = gathered ? 1 : 8;

    private readonly byte[] _numbers = new byte[4 + MaxFrames * 4];
    private readonly byte[] _copies = new byte[MaxFrames * LinearMemory.FrameSize];
    private readonly List<ReadOnlyMemory<byte>> _pieces = [];
    private int _copied;
    // Where the copies not yet closed into a piece begin.
    private int _copiesFrom;
    // The run of adjacent frames read in place from guest memory, not yet closed into a piece.
    private long _runStart;
    private int _runLength;
    private LinearMemory? _runMemory;

    public int Count { get; private set; }
    public bool Full => Count == MaxFrames;

    /// <summary>Count, numbers, then the frames' bytes: the pieces of one message, in order.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Pieces
    {
        get
        {
            CloseRun();
            CloseCopies();
            BinaryPrimitives.WriteUInt32LittleEndian(_numbers, (uint)Count);
            _pieces.Insert(0, _numbers.AsMemory(0, 4 + Count * 4));
            return _pieces;
        }
    }

    /// <summary>
    /// Adds frame <paramref name="frame"/> of <paramref name="memory"/>; returns false (and adds nothing) for an all-zero
    /// frame when <paramref name="zeros"/> says they are skipped. With <paramref name="inPlace"/> (the guest is held and its
    /// memory cannot change before the message is sent) long runs of adjacent frames are not copied. Clears the frame's
    /// word of <paramref name="linesSinceSent"/>: every write harvested into it so far is in what the target will hold
    /// (a write after the harvest is marked again, and harvested at the next).
    /// </summary>
    public bool Add(LinearMemory memory, long frame, ZeroFrames zeros, bool inPlace, ulong[]? linesSinceSent = null)
    {
        var contents = memory.Frame(frame);
        if (linesSinceSent is not null && frame < linesSinceSent.Length) linesSinceSent[frame] = 0;
        var zero = zeros != ZeroFrames.Sent && contents.IndexOfAnyExcept((byte)0) < 0;
        if (zero && zeros == ZeroFrames.Skipped) return false;
        BinaryPrimitives.WriteUInt32LittleEndian(_numbers.AsSpan(4 + Count * 4), (uint)frame | (zero ? ZeroFlag : 0));
        Count++;
        if (zero) return true;
        if (inPlace && _runMemory == memory && frame == _runStart + _runLength)
        {
            _runLength++;
            return true;
        }
        CloseRun();
        if (inPlace) (_runMemory, _runStart, _runLength) = (memory, frame, 1);
        else Copy(contents);
        return true;
    }

    private void Copy(ReadOnlySpan<byte> contents)
    {
        contents.CopyTo(_copies.AsSpan(_copied));
        _copied += contents.Length;
    }

    private void CloseRun()
    {
        if (_runMemory is null) return;
        if (_runLength >= _minRunInPlace)
        {
            CloseCopies();
            _pieces.Add(_runMemory.FramesAsMemory(_runStart, _runLength));
        }
        else
        {
            Copy(_runMemory.FramesAsMemory(_runStart, _runLength).Span);
        }
        _runMemory = null;
    }

    private void CloseCopies()
    {
        if (_copied > _copiesFrom) _pieces.Add(_copies.AsMemory(_copiesFrom, _copied - _copiesFrom));
        _copiesFrom = _copied;
    }

    public void Clear()
    {
        Count = 0;
        _copied = 0;
        _copiesFrom = 0;
        _pieces.Clear();
        _runMemory = null;
    }

    /// <summary>The length of a Frames message's count and numbers, checked against the message's <paramref name="length"/>.</summary>
    public static int HeadLength(uint count, int length)
    {
        if (count > MaxFrames) throw new MigrationProtocolException($"a Frames message of {count} frames exceeds the limit of {MaxFrames}");
        if (length < 4 + count * 4) throw new MigrationProtocolException("a Frames message is cut short");
        return 4 + (int)count * 4;
    }

    /// <summary>
    /// Applies a received payload to <paramref name="memory"/>, with <paramref name="growing"/> growing it for frames beyond
    /// its end (a pre-copy round after the guest grew its memory); calls <paramref name="arrived"/> per frame.
    /// </summary>
    /// <remarks>
    /// Post-copy never overwrites a present frame, since the guest may have written it since: <paramref name="whenPresent"/>
    /// says whether such a frame is a protocol error or, once frames were asked for again, a copy still in flight to skip.
    /// </remarks>
    public static void Apply(ReadOnlySpan<byte> payload, LinearMemory memory, Action<long>? arrived, WhenPresent whenPresent = WhenPresent.Overwrite, bool growing = true)
    {
        if (payload.Length < 4) throw new MigrationProtocolException("a Frames message without its count");
        var headLength = HeadLength(BinaryPrimitives.ReadUInt32LittleEndian(payload), payload.Length);
        var numbers = payload[4..headLength];
        var data = payload[headLength..];
        GrowFor(numbers, memory, growing);
        for (var i = 0; i < numbers.Length; i += 4)
        {
            var word = BinaryPrimitives.ReadUInt32LittleEndian(numbers[i..]);
            long frame = word & ~ZeroFlag;
            var skip = whenPresent != WhenPresent.Overwrite && memory.Present.Get(frame);
            if (skip && whenPresent == WhenPresent.Refuse) throw new MigrationProtocolException($"frame {frame} arrived although it is present: a frame is sent once");
            if ((word & ZeroFlag) != 0)
            {
                if (!skip) memory.WriteFrame(frame, ZeroFrame);
            }
            else
            {
                if (data.Length < LinearMemory.FrameSize) throw new MigrationProtocolException("a Frames message is cut short");
                if (!skip) memory.WriteFrame(frame, data[..LinearMemory.FrameSize]);
                data = data[LinearMemory.FrameSize..];
            }
            if (!skip) arrived?.Invoke(frame);
        }
        if (data.Length != 0) throw new MigrationProtocolException("a Frames message has bytes after its last frame");
    }

    /// <summary>Checks every frame number of a message, and grows the memory once to hold the last (when <paramref name="growing"/>).</summary>
    private static void GrowFor(ReadOnlySpan<byte> numbers, LinearMemory memory, bool growing)
    {
        long highest = -1;
        for (var i = 0; i < numbers.Length; i += 4)
        {
            long frame = BinaryPrimitives.ReadUInt32LittleEndian(numbers[i..]) & ~ZeroFlag;
            if (frame >= (long)memory.MaxPages * LinearMemory.FramesPerPage) throw new MigrationProtocolException($"frame {frame} lies beyond the memory's maximum of {memory.MaxPages} pages");
            highest = Math.Max(highest, frame);
        }
        if (highest < memory.FrameCount) return;
        if (!growing) throw new MigrationProtocolException($"frame {highest} lies beyond the {memory.Pages} pages of the image");
        if (memory.Grow((uint)(highest / LinearMemory.FramesPerPage + 1 - memory.Pages)) < 0) throw new MigrationProtocolException($"memory cannot grow to hold frame {highest}");
    }

    /// <summary>
    /// Where a target's Frames messages go when read straight from a socket into its memory: a target before activation,
    /// whose memory no guest runs on, so a message that then fails its checksum has only written memory that is discarded.
    /// </summary>
    internal sealed class Placement(LinearMemory memory)
    {
        private readonly List<ArraySegment<byte>> _destinations = [];

        /// <summary>Whether a frame beyond the memory's end grows it (pre-copy rounds) or is refused (after the image is restored).</summary>
        public bool Growing { get; set; } = true;

        /// <summary>Checks a message's count and numbers, zeroes its all-zero frames, and returns where the other frames' bytes go, in order.</summary>
        public IReadOnlyList<ArraySegment<byte>> Place(ReadOnlySpan<byte> head)
        {
            var numbers = head[4..];
            GrowFor(numbers, memory, Growing);
            _destinations.Clear();
            for (var i = 0; i < numbers.Length; i += 4)
            {
                var word = BinaryPrimitives.ReadUInt32LittleEndian(numbers[i..]);
                long frame = word & ~ZeroFlag;
                if ((word & ZeroFlag) != 0)
                {
                    memory.WriteFrame(frame, ZeroFrame);
                    continue;
                }
                var destination = memory.FrameToReceive(frame);
                // Adjacent frames (all of stop-and-copy's) are one piece: one buffer for the scattered read and one checksum span.
                if (_destinations.Count > 0 && _destinations[^1] is var last && last.Array == destination.Array && last.Offset + last.Count == destination.Offset)
                    _destinations[^1] = new ArraySegment<byte>(last.Array!, last.Offset, last.Count + destination.Count);
                else
                    _destinations.Add(destination);
            }
            return _destinations;
        }
    }

    private static readonly byte[] ZeroFrame = new byte[LinearMemory.FrameSize];
}

/// <summary>What applying a received frame does to a frame the memory already holds.</summary>
internal enum WhenPresent
{
    /// <summary>Writes it: before activation, no guest runs on this memory (pre-copy rounds, the stop).</summary>
    Overwrite,
    /// <summary>A protocol error: post-copy sends each frame once.</summary>
    Refuse,
    /// <summary>Leaves it: post-copy after a Resend, when copies sent before the source heard of it may still arrive.</summary>
    Skip,
}
