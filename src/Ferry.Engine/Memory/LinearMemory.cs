using System.Runtime.InteropServices;
using Ferry.Wasm;

namespace Ferry.Engine.Memory;

/// <summary>
/// A linear memory in a pinned managed array (so spans over it keep it alive; large ones on 2 MiB pages where Linux allows, see <see cref="HugePages"/>), tracked in 4 KiB frames. The interpreter reads and writes through
/// <see cref="Base"/> after checking an address against <see cref="LoadLimit"/> or <see cref="StoreLimit"/>;
/// tracking lowers those limits to zero so every access takes the checked slow path, which keeps the
/// untracked fast path at a single bounds comparison.
/// </summary>
public sealed unsafe class LinearMemory
{
    public const int FrameSize = 4096;
    public const int FrameShift = 12;
    public const int FramesPerPage = MemoryType.PageSize / FrameSize;
    /// <summary>The most pages one memory can have in Ferry: a .NET array holds just under 2 GiB.</summary>
    public const uint MaxSupportedPages = (uint)(0x7FFF_FFC7L / MemoryType.PageSize);

    // The guest sees the first _size bytes; the rest is zero headroom, so that growing in small steps (malloc's sbrk) is amortized, not a copy each time.
    private byte[] _bytes;
    private byte* _base;
    private ulong _size;
    private bool _dirtyTracking;
    private bool _presenceTracking;
    // Grow swaps the buffer on the guest's thread while a post-copy receiver writes frames from another.
    private readonly Lock _resize = new();

    public LinearMemory(MemoryType type, uint maxPagesAllowed = MemoryType.MaxPages)
    {
        Type = type;
        MaxPages = Math.Min(Math.Min(type.Limits.Max ?? MemoryType.MaxPages, maxPagesAllowed), MaxSupportedPages);
        if (type.Limits.Min > MaxPages) throw new OutOfMemoryException($"a memory of {type.Limits.Min} pages is larger than Ferry supports ({MaxPages} pages)");
        _bytes = Allocate((ulong)type.Limits.Min * MemoryType.PageSize);
        _base = AddressOf(_bytes);
        _size = (ulong)_bytes.Length;
        Dirty = new FrameBitmap(FrameCount);
        DirtyLines = new DirtyLineMap(FrameCount);
        Present = new FrameBitmap(FrameCount);
        UpdateLimits();
    }

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
    /// <summary>The lines written inside the frames <see cref="Dirty"/> marks (not for growth: a grown frame is zero).</summary>
    public DirtyLineMap DirtyLines { get; }
    /// <summary>Frames whose contents are here (post-copy); consulted only while presence tracking is on.</summary>
    public FrameBitmap Present { get; }

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

    public Span<byte> Span => _bytes.AsSpan(0, (int)_size);

    /// <summary>
    /// Called, on the accessing thread, for an absent frame that a host function (not the interpreter) touches:
    /// it must return once the frame is present, or throw. Post-copy sets it; without it such an access throws.
    /// </summary>
    public Action<long>? AbsentFrameHandler { get; set; }

    /// <summary>
    /// Makes [address, address+length) safe for a host function to read or write: absent frames are fetched
    /// through <see cref="AbsentFrameHandler"/>, and with <paramref name="write"/> the frames are marked dirty.
    /// Out-of-bounds ranges are the caller's to reject first.
    /// </summary>
    public void PrepareHostAccess(ulong address, ulong length, bool write)
    {
        if (length == 0 || address + length > _size || !(_presenceTracking || (write && _dirtyTracking))) return;
        var first = (long)(address >> FrameShift);
        var last = (long)((address + length - 1) >> FrameShift);
        if (_presenceTracking)
        {
            for (var absent = Present.FirstClear(first, last); absent >= 0; absent = Present.FirstClear(absent, last))
            {
                var handler = AbsentFrameHandler ?? throw new InvalidOperationException($"memory frame {absent} is absent and nothing can fetch it");
                handler(absent);
                if (!Present.Get(absent)) throw new InvalidOperationException($"memory frame {absent} is still absent after its fetch");
            }
        }
        if (write && _dirtyTracking)
        {
            Dirty.SetRange(first, last);
            DirtyLines.Mark(address, length);
        }
    }

    /// <summary>A view of [offset, offset+length); throws when out of bounds.</summary>
    public Span<byte> Slice(ulong offset, int length)
    {
        if (length < 0 || offset + (ulong)length > _size) throw new ArgumentOutOfRangeException(nameof(offset));
        return _bytes.AsSpan((int)offset, length);
    }

    /// <summary>A new array for at least <paramref name="size"/> bytes, with headroom: twice the old capacity when the maximum allows (null: no memory).</summary>
    private byte[]? Reallocate(ulong size)
    {
        var roomy = Math.Min(Math.Max(size, 2 * (ulong)_bytes.Length), (ulong)MaxPages * MemoryType.PageSize);
        // Without room for the headroom, the exact size may still fit.
        return TryAllocate(roomy) ?? (roomy > size ? TryAllocate(size) : null);
    }

    private static byte[]? TryAllocate(ulong size)
    {
        try
        {
            return Allocate(size);
        }
        catch (OutOfMemoryException)
        {
            return null;
        }
    }

    private static byte[] Allocate(ulong size)
    {
        var bytes = GC.AllocateArray<byte>(checked((int)size), pinned: true);
        HugePages.Advise(AddressOf(bytes), bytes.Length);
        return bytes;
    }

    private static byte* AddressOf(byte[] bytes) =>
        (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(bytes));

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
        if (store && _dirtyTracking)
        {
            Dirty.SetRange(first, last);
            DirtyLines.Mark(address, length);
        }
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
        var grown = newSize <= (ulong)_bytes.Length ? _bytes : Reallocate(newSize);
        if (grown is null) return -1;
        using var scope = _resize.EnterScope();
        if (grown != _bytes)
        {
            // No other thread reads the old buffer unless a migration tracks this memory (Frame() may then read it
            // torn, relying on it keeping its contents), so only then must it stay intact until collected.
            MoveContents(_bytes, grown, (long)_size, release: !_dirtyTracking && !_presenceTracking);
            _bytes = grown;
            _base = AddressOf(grown);
        }
        var oldFrames = FrameCount;
        _size = newSize;
        Type = new MemoryType(Type.Limits with { Min = (uint)newPages });
        Dirty.EnsureCapacity(FrameCount);
        DirtyLines.EnsureCapacity(FrameCount);
        Present.EnsureCapacity(FrameCount);
        // Zero-filled growth is present by definition, and counts as written for pre-copy.
        Present.SetRange(oldFrames, FrameCount - 1);
        if (_dirtyTracking) Dirty.SetRange(oldFrames, FrameCount - 1);
        UpdateLimits();
        return (int)oldPages;
    }

    /// <summary>
    /// Copies the first <paramref name="size"/> bytes of <paramref name="from"/> into the zeroed <paramref name="to"/>, skipping
    /// all-zero frames so that the new buffer's pages stay unbacked where the guest never wrote; with
    /// <paramref name="release"/>, hands the old buffer's pages back to the OS as each chunk is copied, so a growth does not
    /// hold two copies of the memory (the old array lingers, pinned, until a full collection).
    /// </summary>
    private static void MoveContents(byte[] from, byte[] to, long size, bool release)
    {
        const int Chunk = 2 << 20;
        for (long at = 0; at < size; at += Chunk)
        {
            var length = (int)Math.Min(Chunk, size - at);
            for (var frame = 0; frame < length; frame += FrameSize)
            {
                var source = from.AsSpan((int)(at + frame), Math.Min(FrameSize, length - frame));
                if (source.IndexOfAnyExcept((byte)0) >= 0) source.CopyTo(to.AsSpan((int)(at + frame)));
            }
            if (release) HugePages.Release(AddressOf(from) + at, length);
        }
    }

    /// <summary>Copies a frame's contents in (post-copy fetch or restore) and marks it present.</summary>
    public void WriteFrame(long frame, ReadOnlySpan<byte> contents)
    {
        using var scope = _resize.EnterScope();
        if (contents.Length != FrameSize || frame < 0 || frame >= FrameCount) throw new ArgumentOutOfRangeException(nameof(frame));
        contents.CopyTo(_bytes.AsSpan((int)(frame << FrameShift), FrameSize));
        Present.Set(frame);
    }

    /// <summary>
    /// A frame's bytes, marked present, for a receive straight into memory (a migration target's scattered socket read):
    /// only while no guest runs on this memory and it does not grow, since the segment outlives any lock.
    /// </summary>
    public ArraySegment<byte> FrameToReceive(long frame)
    {
        var bytes = _bytes;
        if (frame < 0 || frame >= FrameCount || (frame + 1) << FrameShift > bytes.Length) throw new ArgumentOutOfRangeException(nameof(frame));
        Present.Set(frame);
        return new ArraySegment<byte>(bytes, (int)(frame << FrameShift), FrameSize);
    }

    /// <summary>
    /// Has the operating system back every frame now, so that filling them later (a migration target receiving frames)
    /// pays no page fault per frame; an atomic OR of zero into each frame, so it is harmless to a running guest.
    /// </summary>
    public void CommitFrames()
    {
        var bytes = _bytes;
        var size = Math.Min((long)_size, bytes.Length);
        for (long at = 0; at + sizeof(int) <= size; at += FrameSize)
            Interlocked.Or(ref System.Runtime.CompilerServices.Unsafe.As<byte, int>(ref bytes[at]), 0);
    }

    /// <summary>Adjacent frames' bytes for an asynchronous write, which spans cannot outlive: only while the guest cannot write or grow them.</summary>
    public ReadOnlyMemory<byte> FramesAsMemory(long first, int count)
    {
        var bytes = _bytes;
        if (first < 0 || count < 0 || first + count > FrameCount || (first + count) << FrameShift > bytes.Length) throw new ArgumentOutOfRangeException(nameof(first));
        return bytes.AsMemory((int)(first << FrameShift), count << FrameShift);
    }

    /// <summary>A frame's bytes; safe to call from another thread while the guest runs (the view may be torn, never out of bounds).</summary>
    public ReadOnlySpan<byte> Frame(long frame)
    {
        var bytes = _bytes;
        if (frame < 0 || frame >= FrameCount || (frame + 1) << FrameShift > bytes.Length) throw new ArgumentOutOfRangeException(nameof(frame));
        return bytes.AsSpan((int)(frame << FrameShift), FrameSize);
    }
}
