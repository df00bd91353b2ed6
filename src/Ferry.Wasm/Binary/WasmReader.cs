using System.Buffers.Binary;
using System.Text;

namespace Ferry.Wasm.Binary;

/// <summary>
/// Forward-only reader of WebAssembly binary encodings over a span, in the style of Utf8JsonReader.
/// Every failure is a <see cref="MalformedModuleException"/> naming the absolute byte offset.
/// </summary>
public ref struct WasmReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private readonly int _baseOffset;
    private int _position;

    /// <param name="buffer">The bytes to read.</param>
    /// <param name="baseOffset">Absolute offset of <paramref name="buffer"/>[0] in the module, for error messages.</param>
    public WasmReader(ReadOnlySpan<byte> buffer, int baseOffset = 0)
    {
        _buffer = buffer;
        _baseOffset = baseOffset;
        _position = 0;
    }

    /// <summary>Position relative to the start of the buffer.</summary>
    public int Position
    {
        readonly get => _position;
        set => _position = value;
    }

    /// <summary>Absolute position in the module.</summary>
    public readonly int Offset => _baseOffset + _position;
    public readonly int Remaining => _buffer.Length - _position;
    public readonly bool AtEnd => _position >= _buffer.Length;

    public readonly MalformedModuleException Error(string reason) => new(reason, Offset);

    public byte ReadByte()
    {
        if (_position >= _buffer.Length) throw Error("unexpected end");
        return _buffer[_position++];
    }

    public readonly byte PeekByte()
    {
        if (_position >= _buffer.Length) throw Error("unexpected end");
        return _buffer[_position];
    }

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || count > Remaining) throw Error("unexpected end");
        var span = _buffer.Slice(_position, count);
        _position += count;
        return span;
    }

    public uint ReadVarU32()
    {
        uint result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 28)
            {
                if ((b & 0x80) != 0) throw Error("integer representation too long");
                if ((b & 0x70) != 0) throw Error("integer too large");
                return result | ((uint)b << 28);
            }
            result |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }

    public int ReadVarI32()
    {
        int result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 28)
            {
                if ((b & 0x80) != 0) throw Error("integer representation too long");
                // The unused high bits must be a sign extension of bit 3 of this byte.
                var high = b & 0x70;
                if (high != 0 && high != 0x70) throw Error("integer too large");
                if (((b & 0x08) != 0) != (high == 0x70)) throw Error("integer too large");
                return result | (b << 28);
            }
            result |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if (shift < 25 && (b & 0x40) != 0) result |= -1 << (shift + 7);
                return result;
            }
        }
    }

    /// <summary>A signed 33-bit LEB128, as block types use.</summary>
    public long ReadVarS33()
    {
        long result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 28)
            {
                if ((b & 0x80) != 0) throw Error("integer representation too long");
                var high = b & 0x60;
                if (high != 0 && high != 0x60) throw Error("integer too large");
                if (((b & 0x10) != 0) != (high == 0x60)) throw Error("integer too large");
                result |= (long)(b & 0x7F) << 28;
                if ((b & 0x40) != 0) result |= -1L << 35;
                return result;
            }
            result |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if ((b & 0x40) != 0) result |= -1L << (shift + 7);
                return result;
            }
        }
    }

    public long ReadVarI64()
    {
        long result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = ReadByte();
            if (shift == 63)
            {
                if ((b & 0x80) != 0) throw Error("integer representation too long");
                // Only bit 0 carries data; the rest must repeat it.
                if (b != 0 && b != 0x7F) throw Error("integer too large");
                return result | ((long)b << 63);
            }
            result |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if (shift < 57 && (b & 0x40) != 0) result |= -1L << (shift + 7);
                return result;
            }
        }
    }

    public uint ReadF32Bits() => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4));

    public ulong ReadF64Bits() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>A length-prefixed UTF-8 name; invalid UTF-8 is "malformed UTF-8 encoding".</summary>
    public string ReadName()
    {
        var length = ReadVarU32();
        if (length > Remaining) throw Error("unexpected end");
        var start = Offset;
        var bytes = ReadBytes((int)length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new MalformedModuleException("malformed UTF-8 encoding", start);
        }
    }
}
