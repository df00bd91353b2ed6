namespace Ferry.Engine.Memory;

/// <summary>One bit per 4 KiB frame of linear memory. Marking and harvesting are thread-safe.</summary>
public sealed class FrameBitmap
{
    private ulong[] _words;

    public FrameBitmap(long frameCount) => _words = new ulong[(frameCount + 63) >> 6];

    public long Capacity => (long)_words.Length << 6;

    public bool Get(long frame) => (Volatile.Read(ref _words[frame >> 6]) & (1UL << (int)(frame & 63))) != 0;

    public void Set(long frame) => Interlocked.Or(ref _words[frame >> 6], 1UL << (int)(frame & 63));

    public void Clear(long frame) => Interlocked.And(ref _words[frame >> 6], ~(1UL << (int)(frame & 63)));

    /// <summary>Marks frames [first, last] inclusive.</summary>
    public void SetRange(long first, long last)
    {
        for (var frame = first; frame <= last; frame++)
        {
            if ((frame & 63) == 0 && frame + 63 <= last)
            {
                Interlocked.Exchange(ref _words[frame >> 6], ulong.MaxValue);
                frame += 63;
                continue;
            }
            Set(frame);
        }
    }

    /// <summary>True when every frame in [first, last] is set.</summary>
    public bool AllSet(long first, long last)
    {
        for (var frame = first; frame <= last; frame++)
        {
            if (!Get(frame)) return false;
        }
        return true;
    }

    /// <summary>The first clear frame in [first, last], or -1.</summary>
    public long FirstClear(long first, long last)
    {
        for (var frame = first; frame <= last; frame++)
        {
            if (!Get(frame)) return frame;
        }
        return -1;
    }

    public void SetAll(long frameCount)
    {
        if (frameCount > 0) SetRange(0, frameCount - 1);
    }

    public void ClearAll()
    {
        for (var i = 0; i < _words.Length; i++) Interlocked.Exchange(ref _words[i], 0);
    }

    /// <summary>Clears every frame set in <paramref name="mask"/> (a harvested or snapshotted bit array), a word at a time.</summary>
    public void ClearWhere(ulong[] mask)
    {
        var words = Math.Min(mask.Length, _words.Length);
        for (var i = 0; i < words; i++)
        {
            if (mask[i] != 0) Interlocked.And(ref _words[i], ~mask[i]);
        }
    }

    /// <summary>Grows to hold at least <paramref name="frameCount"/> frames; new frames start clear.</summary>
    public void EnsureCapacity(long frameCount)
    {
        var words = (frameCount + 63) >> 6;
        if (words > _words.Length) Array.Resize(ref _words, (int)words);
    }

    /// <summary>Copies the bits out and clears them, word by word atomically: no mark is lost or seen twice.</summary>
    public ulong[] Harvest()
    {
        var copy = new ulong[_words.Length];
        for (var i = 0; i < _words.Length; i++) copy[i] = Interlocked.Exchange(ref _words[i], 0);
        return copy;
    }

    public ulong[] Snapshot()
    {
        var copy = new ulong[_words.Length];
        for (var i = 0; i < _words.Length; i++) copy[i] = Volatile.Read(ref _words[i]);
        return copy;
    }

    /// <summary>Enumerates the set frames of a harvested or snapshotted bit array.</summary>
    public static IEnumerable<long> SetFrames(ulong[] words)
    {
        for (var i = 0; i < words.Length; i++)
        {
            var word = words[i];
            while (word != 0)
            {
                var bit = System.Numerics.BitOperations.TrailingZeroCount(word);
                yield return ((long)i << 6) + bit;
                word &= word - 1;
            }
        }
    }
}
