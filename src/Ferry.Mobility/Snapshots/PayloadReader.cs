using System.Buffers.Binary;
using System.Text;

namespace Ferry.Mobility.Snapshots;

/// <summary>
/// Reads a section payload in the style of Utf8JsonReader: a ref struct over the bytes, every failure a
/// <see cref="SnapshotFormatException"/> naming the section and the offset in it.
/// </summary>
internal ref struct PayloadReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);
    private readonly ReadOnlySpan<byte> _payload;
    private readonly SectionType _section;
    private int _position;

    public PayloadReader(ReadOnlySpan<byte> payload, SectionType section)
    {
        _payload = payload;
        _section = section;
        _position = 0;
    }

    public readonly SnapshotFormatException Error(string problem) => new($"{_section} section, byte {_position}: {problem}");

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > _payload.Length - _position) throw Error("ends early");
        var span = _payload.Slice(_position, count);
        _position += count;
        return span;
    }

    public byte U8() => Take(1)[0];
    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    /// <summary>The next u32, left to be read.</summary>
    public readonly uint PeekU32() => _payload.Length - _position >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(_payload[_position..]) : throw Error("ends early");
    public int I32() => (int)U32();
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
    public long I64() => (long)U64();

    public bool Bool()
    {
        var value = U8();
        return value <= 1 ? value == 1 : throw Error($"expected 0 or 1, found {value}");
    }

    /// <summary>A count of items of at least <paramref name="itemSize"/> bytes each, refused if the payload cannot hold them.</summary>
    public int Count(int itemSize)
    {
        var count = U32();
        if ((ulong)count * (ulong)Math.Max(itemSize, 1) > (ulong)(_payload.Length - _position)) throw Error($"{count} items cannot fit in the section");
        return (int)count;
    }

    public ReadOnlySpan<byte> Bytes() => Take(Count(1));

    /// <summary>A SHA-256 digest.</summary>
    public ReadOnlySpan<byte> Bytes32() => Take(32);

    public string String()
    {
        var bytes = Bytes();
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error("invalid UTF-8");
        }
    }

    /// <summary>A byte-sized enum whose values run from 0 to <paramref name="count"/> - 1.</summary>
    public T Enum<T>(int count) where T : unmanaged, System.Enum
    {
        var value = U8();
        if (value >= count) throw Error($"unknown {typeof(T).Name} {value}");
        return System.Runtime.CompilerServices.Unsafe.As<byte, T>(ref value);
    }

    public readonly void End()
    {
        if (_position != _payload.Length) throw Error($"{_payload.Length - _position} unexpected trailing bytes");
    }
}
