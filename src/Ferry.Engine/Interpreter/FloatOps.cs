namespace Ferry.Engine.Interpreter;

/// <summary>Float operations whose Wasm semantics differ from a plain C# expression.</summary>
internal static class FloatOps
{
    private const uint QuietNaN32 = 0x0040_0000;
    private const ulong QuietNaN64 = 0x0008_0000_0000_0000;

    // Math.Min/Max follow IEEE 754-2019 (NaN wins, -0 < +0); Wasm also requires the NaN to be quiet.
    public static ulong Min32(ulong a, ulong b) => Quiet32(MathF.Min(BitConverter.UInt32BitsToSingle((uint)a), BitConverter.UInt32BitsToSingle((uint)b)));
    public static ulong Max32(ulong a, ulong b) => Quiet32(MathF.Max(BitConverter.UInt32BitsToSingle((uint)a), BitConverter.UInt32BitsToSingle((uint)b)));
    public static ulong Min64(ulong a, ulong b) => Quiet64(Math.Min(BitConverter.UInt64BitsToDouble(a), BitConverter.UInt64BitsToDouble(b)));
    public static ulong Max64(ulong a, ulong b) => Quiet64(Math.Max(BitConverter.UInt64BitsToDouble(a), BitConverter.UInt64BitsToDouble(b)));

    private static ulong Quiet32(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        return float.IsNaN(value) ? bits | QuietNaN32 : bits;
    }

    private static ulong Quiet64(double value)
    {
        var bits = BitConverter.DoubleToUInt64Bits(value);
        return double.IsNaN(value) ? bits | QuietNaN64 : bits;
    }

    /// <summary>u64 to f32 with one rounding: halve with a sticky bit so the signed conversion rounds correctly.</summary>
    public static float U64ToF32(ulong value) =>
        (long)value >= 0 ? (long)value : 2f * (long)((value >> 1) | (value & 1));

    public static double U64ToF64(ulong value) =>
        (long)value >= 0 ? (long)value : 2.0 * (long)((value >> 1) | (value & 1));

    private static double Operand(Op op, ulong bits) => op switch
    {
        Op.I32TruncF32S or Op.I32TruncF32U or Op.I64TruncF32S or Op.I64TruncF32U
            or Op.I32TruncSatF32S or Op.I32TruncSatF32U or Op.I64TruncSatF32S or Op.I64TruncSatF32U
            => BitConverter.UInt32BitsToSingle((uint)bits),
        _ => BitConverter.UInt64BitsToDouble(bits),
    };

    /// <summary>The trapping float-to-int truncations.</summary>
    public static bool TryTruncate(Op op, ulong bits, out ulong result, out TrapKind trap)
    {
        var x = Operand(op, bits);
        result = 0;
        if (double.IsNaN(x))
        {
            trap = TrapKind.InvalidConversionToInteger;
            return false;
        }
        trap = TrapKind.IntegerOverflow;
        switch (op)
        {
            case Op.I32TruncF32S or Op.I32TruncF64S:
                if (!(x > -2147483649.0 && x < 2147483648.0)) return false;
                result = (uint)(int)x;
                return true;
            case Op.I32TruncF32U or Op.I32TruncF64U:
                if (!(x > -1.0 && x < 4294967296.0)) return false;
                result = (uint)x;
                return true;
            case Op.I64TruncF32S or Op.I64TruncF64S:
                if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) return false;
                result = (ulong)(long)x;
                return true;
            default:
                if (!(x > -1.0 && x < 18446744073709551616.0)) return false;
                result = (ulong)x;
                return true;
        }
    }

    /// <summary>The saturating truncations: NaN is 0, out-of-range values clamp.</summary>
    public static ulong TruncateSaturating(Op op, ulong bits)
    {
        var x = Operand(op, bits);
        if (double.IsNaN(x)) return 0;
        return op switch
        {
            Op.I32TruncSatF32S or Op.I32TruncSatF64S =>
                x <= -2147483648.0 ? 0x8000_0000UL : x >= 2147483647.0 ? 0x7FFF_FFFFUL : (uint)(int)x,
            Op.I32TruncSatF32U or Op.I32TruncSatF64U =>
                x <= 0 ? 0UL : x >= 4294967295.0 ? 0xFFFF_FFFFUL : (uint)x,
            Op.I64TruncSatF32S or Op.I64TruncSatF64S =>
                x <= -9223372036854775808.0 ? 0x8000_0000_0000_0000UL : x >= 9223372036854775808.0 ? 0x7FFF_FFFF_FFFF_FFFFUL : (ulong)(long)x,
            _ => x <= 0 ? 0UL : x >= 18446744073709551616.0 ? ulong.MaxValue : (ulong)x,
        };
    }
}
