using System.Buffers.Binary;
using Ferry.Engine.Memory;

namespace Ferry.Wasi;

/// <summary>Bounds-checked access to the caller's linear memory: every wild pointer or length is EFAULT.</summary>
internal readonly ref struct GuestMemory
{
    private readonly Span<byte> _bytes;

    public GuestMemory(LinearMemory? memory) => _bytes = memory is null ? Span<byte>.Empty : memory.Span;

    public Span<byte> Slice(ulong pointer, ulong length)
    {
        if (pointer + length > (ulong)_bytes.Length) throw new WasiError(Errno.Fault);
        return _bytes.Slice((int)pointer, (int)length);
    }

    public uint ReadU32(ulong pointer) => BinaryPrimitives.ReadUInt32LittleEndian(Slice(pointer, 4));
    public ulong ReadU64(ulong pointer) => BinaryPrimitives.ReadUInt64LittleEndian(Slice(pointer, 8));
    public void WriteU8(ulong pointer, byte value) => Slice(pointer, 1)[0] = value;
    public void WriteU16(ulong pointer, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Slice(pointer, 2), value);
    public void WriteU32(ulong pointer, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Slice(pointer, 4), value);
    public void WriteU64(ulong pointer, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Slice(pointer, 8), value);

    public string ReadString(ulong pointer, ulong length)
    {
        try
        {
            return StrictUtf8.GetString(Slice(pointer, length));
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new WasiError(Errno.IllegalSequence);
        }
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(false, true);
}
