using System.Runtime.InteropServices;
using Ferry.Wasm;

namespace Ferry.Engine.Memory;

/// <summary>
/// A linear memory in native memory, tracked in 4 KiB frames. The interpreter reads and writes through
/// <see cref="Base"/> after checking an address against <see cref="LoadLimit"/> or <see cref="StoreLimit"/>;
/// tracking lowers those limits to zero so every access takes the checked slow path, which keeps the
/// untracked fast path at a single bounds comparison.
/// </summary>
public sealed unsafe class LinearMemory : IDisposable
{
    public const int FrameSize = 4096;
    public const int FrameShift = 12;
    public const int FramesPerPage = MemoryType.PageSize / FrameSize;

    private byte* _base;
    private ulong _size;
    private bool _dirtyTracking;
    private bool _presenceTracking;

    public LinearMemory(MemoryType type, uint maxPagesAllowed = MemoryType.MaxPages)
    {
        Type = type;
        MaxPages = Math.Min(type.Limits.Max ?? MemoryType.MaxPages, maxPagesAllowed);
        var bytes = (ulong)type.Limits.Min * MemoryType.PageSize;
        _base = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(bytes, 1));
        _size = bytes;
        Dirty = new FrameBitmap(FrameCount);
        Present = new FrameBitmap(FrameCount);
        UpdateLimits();
    }

    ~LinearMemory() => Free();

    public MemoryType Type { get; private set; }
    public uint MaxPages { get; }
    public byte* Base => _base;
    public ulong Size => _size;
    public uint Pages => (uint)(_size / MemoryType.PageSize);
    public long FrameCount => (long)(_size >> FrameShift);

    /// <summary>An access [a, a+n) takes the fast path when a+n &lt;= this.</summary>
    public ulong LoadLimit { get; private set; }
    public ulong StoreLimit { get; private set; }

    /// <summary>Frames written while dirty tracking is on.</summary>
    public FrameBitmap Dirty { get; }
    /// <summary>Frames whose contents are here (post-copy); consulted only while presence tracking is on.</summary>
    public FrameBitmap Present { get; }

    /// <summary>Counts growths: holders of <see cref="Base"/> reload it when this changes.</summary>
    public int Generation { get; private set; }

    public bool DirtyTracking
    {
        get => _dirtyTracking;
        set
        {
            _dirtyTracking = value;
            UpdateLimits();
        }
    }

    public bool PresenceTracking
    {
        get => _presenceTracking;
        set
        {
            _presenceTracking = value;
            UpdateLimits();
        }
    }

    public Span<byte> Span => _size == 0 ? Span<byte>.Empty : new Span<byte>(_base, checked((int)_size));

    /// <summary>A view of [offset, offset+length); throws when out of bounds.</summary>
    public Span<byte> Slice(ulong offset, int length)
    {
        if (length < 0 || offset + (ulong)length > _size) throw new ArgumentOutOfRangeException(nameof(offset));
        return new Span<byte>(_base + offset, length);
    }

    private void UpdateLimits()
    {
        LoadLimit = _presenceTracking ? 0 : _size;
        StoreLimit = _presenceTracking || _dirtyTracking ? 0 : _size;
    }

    /// <summary>
    /// The slow path of an access of <paramref name="length"/> bytes at <paramref name="address"/>:
    /// returns -1 when the access may proceed (marking frames dirty for a store), -2 when out of bounds,
    /// or the first absent frame's number.
    /// </summary>
    public long CheckAccess(ulong address, ulong length, bool store)
    {
        if (address + length > _size || address + length < address) return -2;
        if (length == 0) return -1;
        var first = (long)(address >> FrameShift);
        var last = (long)((address + length - 1) >> FrameShift);
        if (_presenceTracking)
        {
            var absent = Present.FirstClear(first, last);
            if (absent >= 0) return absent;
        }
        if (store && _dirtyTracking) Dirty.SetRange(first, last);
        return -1;
    }

    /// <summary>memory.grow: returns the old size in pages, or -1.</summary>
    public int Grow(uint deltaPages)
    {
        var oldPages = Pages;
        if (deltaPages == 0) return (int)oldPages;
        var newPages = (ulong)oldPages + deltaPages;
        if (newPages > MaxPages) return -1;
        var newSize = newPages * MemoryType.PageSize;
        byte* grown;
        try
        {
            grown = (byte*)NativeMemory.Realloc(_base, (nuint)newSize);
        }
        catch (OutOfMemoryException)
        {
            return -1;
        }
        NativeMemory.Clear(grown + _size, (nuint)(newSize - _size));
        var oldFrames = FrameCount;
        _base = grown;
        _size = newSize;
        Type = new MemoryType(Type.Limits with { Min = (uint)newPages });
        Dirty.EnsureCapacity(FrameCount);
        Present.EnsureCapacity(FrameCount);
        // Zero-filled growth is present by definition, and counts as written for pre-copy.
        Present.SetRange(oldFrames, FrameCount - 1);
        if (_dirtyTracking) Dirty.SetRange(oldFrames, FrameCount - 1);
        Generation++;
        UpdateLimits();
        return (int)oldPages;
    }

    /// <summary>Copies a frame's contents in (post-copy fetch or restore) and marks it present.</summary>
    public void WriteFrame(long frame, ReadOnlySpan<byte> contents)
    {
        if (contents.Length != FrameSize || frame < 0 || frame >= FrameCount) throw new ArgumentOutOfRangeException(nameof(frame));
        contents.CopyTo(new Span<byte>(_base + (frame << FrameShift), FrameSize));
        Present.Set(frame);
    }

    public ReadOnlySpan<byte> Frame(long frame)
    {
        if (frame < 0 || frame >= FrameCount) throw new ArgumentOutOfRangeException(nameof(frame));
        return new ReadOnlySpan<byte>(_base + (frame << FrameShift), FrameSize);
    }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void Free()
    {
        if (_base == null) return;
        NativeMemory.Free(_base);
        _base = null;
        _size = 0;
        LoadLimit = 0;
        StoreLimit = 0;
    }
}
