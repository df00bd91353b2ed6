using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>
/// A typed WebAssembly value. <see cref="Bits"/> is the engine's slot encoding: integers and float bit
/// patterns as they are; references as 0 for null, otherwise the referent's handle plus one.
/// </summary>
public readonly struct Value : IEquatable<Value>
{
    public Value(ValType type, ulong bits)
    {
        Type = type;
        Bits = bits;
    }

    public ValType Type { get; }
    public ulong Bits { get; }

    public static Value I32(int value) => new(ValType.I32, (uint)value);
    public static Value I64(long value) => new(ValType.I64, (ulong)value);
    public static Value F32(float value) => new(ValType.F32, BitConverter.SingleToUInt32Bits(value));
    public static Value F64(double value) => new(ValType.F64, BitConverter.DoubleToUInt64Bits(value));
    public static Value F32Bits(uint bits) => new(ValType.F32, bits);
    public static Value F64Bits(ulong bits) => new(ValType.F64, bits);
    public static Value Null(ValType referenceType) => new(referenceType, 0);
    /// <summary>An externref carrying an opaque host number.</summary>
    public static Value ExternRef(ulong hostValue) => new(ValType.ExternRef, hostValue + 1);

    /// <summary>The zero value of a type, as locals and grown table slots start.</summary>
    public static Value Default(ValType type) => new(type, 0);

    public int AsI32() => (int)(uint)Bits;
    public long AsI64() => (long)Bits;
    public float AsF32() => BitConverter.UInt32BitsToSingle((uint)Bits);
    public double AsF64() => BitConverter.UInt64BitsToDouble(Bits);
    public bool IsNull => Type.IsReference() && Bits == 0;
    /// <summary>The host number of a non-null externref.</summary>
    public ulong AsExternRef() => Bits - 1;

    public bool Equals(Value other) => Type == other.Type && Bits == other.Bits;
    public override bool Equals(object? obj) => obj is Value other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(Type, Bits);
    public static bool operator ==(Value left, Value right) => left.Equals(right);
    public static bool operator !=(Value left, Value right) => !left.Equals(right);

    public override string ToString() => Type switch
    {
        ValType.I32 => $"i32:{AsI32()}",
        ValType.I64 => $"i64:{AsI64()}",
        ValType.F32 => $"f32:{AsF32()}",
        ValType.F64 => $"f64:{AsF64()}",
        _ => Bits == 0 ? $"{Type.Name()}:null" : $"{Type.Name()}:{Bits - 1}",
    };
}
