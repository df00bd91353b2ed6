using System.Numerics;

namespace Ferry.Engine.Memory;

/// <summary>
/// One bit per 64-byte line of linear memory written while dirty tracking is on, a 64-bit word per 4 KiB frame: what
/// changed inside each frame that <see cref="LinearMemory.Dirty"/> marks. A hypervisor sees writes only per page; an
/// interpreter sees each one, so pre-copy's stop can send the lines a frame changed instead of the whole frame.
/// Marked by the guest's thread only (plain writes, no atomics on the store path), and harvested while the guest is
/// stopped at a safepoint.
/// </summary>
public sealed class DirtyLineMap
{
    public const int LineShift = 6;
    public const int LineSize = 1 << LineShift;

    private ulong[] _frames;

    public DirtyLineMap(long frameCount) => _frames = new ulong[frameCount];

    /// <summary>Marks the lines of [address, address + length), length at least 1.</summary>
    public void Mark(ulong address, ulong length)
    {
        var last = (address + length - 1) >> LineShift;
        for (var line = address >> LineShift; line <= last; line++)
        {
            if ((line & 63) == 0 && line + 63 <= last)
            {
                _frames[line >> 6] = ulong.MaxValue;
                line += 63;
                continue;
            }
            _frames[line >> 6] |= 1UL << (int)(line & 63);
        }
    }

    /// <summary>Grows to hold at least <paramref name="frameCount"/> frames; new lines start clear.</summary>
    public void EnsureCapacity(long frameCount)
    {
        if (frameCount > _frames.Length) Array.Resize(ref _frames, (int)frameCount);
    }

    public void ClearAll() => Array.Clear(_frames);

    /// <summary>
    /// Moves the marks of the frames set in <paramref name="frames"/> (a harvest of <see cref="LinearMemory.Dirty"/>, which
    /// marks every frame whose lines are marked here) into <paramref name="lines"/>, a word per frame, growing it to this
    /// map's size: the cost is per dirty frame, not per frame of memory, since the stop harvests inside the downtime.
    /// </summary>
    public void HarvestInto(ulong[] frames, ref ulong[] lines)
    {
        if (lines.Length < _frames.Length) Array.Resize(ref lines, _frames.Length);
        var words = Math.Min(frames.Length, (_frames.Length + 63) >> 6);
        for (var word = 0; word < words; word++)
        {
            for (var bits = frames[word]; bits != 0; bits &= bits - 1)
            {
                var frame = (word << 6) + BitOperations.TrailingZeroCount(bits);
                if (frame >= _frames.Length) break;
                lines[frame] |= _frames[frame];
                _frames[frame] = 0;
            }
        }
    }
}
