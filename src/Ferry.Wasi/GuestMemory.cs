using System.Buffers.Binary;
using Ferry.Engine.Memory;

namespace Ferry.Wasi;

/// <summary>
/// Bounds-checked access to the caller's linear memory: every wild pointer or length is EFAULT. Host accesses
/// respect memory tracking: absent frames (post-copy) are fetched first, and writable views mark frames dirty.
/// </summary>
internal readonly ref struct GuestMemory
{
    private readonly LinearMemory? _memory;

    public GuestMemory(LinearMemory? memory) => _memory = memory;

    /// <summary>A view the host may write (also used where it reads and writes).</summary>
    public Span<byte> Slice(ulong pointer, ulong length) => View(pointer, length, write: true);

    /// <summary>A view the host only reads.</summary>
    public ReadOnlySpan<byte> Read(ulong pointer, ulong length) => View(pointer, length, write: false);

    private Span<byte> View(ulong pointer, ulong length, bool write)
    {
        if (_memory is null)
        {
            if (pointer + length > 0) throw new WasiError(Errno.Fault);
            return Span<byte>.Empty;
        }
        if (pointer + length > _memory.Size || pointer + length < pointer) throw new WasiError(Errno.Fault);
        _memory.PrepareHostAccess(pointer, length, write);
        return _memory.Span.Slice((int)pointer, (int)length);
    }

    public uint ReadU32(ulong pointer) => BinaryPrimitives.ReadUInt32LittleEndian(Read(pointer, 4));
    public ulong ReadU64(ulong pointer) => BinaryPrimitives.ReadUInt64LittleEndian(Read(pointer, 8));
    public void WriteU8(ulong pointer, byte value) => Slice(pointer, 1)[0] = value;
    public void WriteU16(ulong pointer, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Slice(pointer, 2), value);
    public void WriteU32(ulong pointer, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Slice(pointer, 4), value);
    public void WriteU64(ulong pointer, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Slice(pointer, 8), value);

    public string ReadString(ulong pointer, ulong length)
    {
        try
        {
            return StrictUtf8.GetString(Read(pointer, length));
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new WasiError(Errno.IllegalSequence);
        }
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(false, true);
}
