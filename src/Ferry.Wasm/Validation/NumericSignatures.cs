namespace Ferry.Wasm.Validation;

/// <summary>Operand and result types of the numeric opcodes 0x45 to 0xC4.</summary>
internal static class NumericSignatures
{
    /// <param name="First">The first (or only) operand.</param>
    /// <param name="Second">The second operand, or 0 for unary operations.</param>
    internal readonly record struct Signature(ValType First, ValType Second, ValType Result);

    private static readonly Signature?[] Table = Build();

    public static Signature? Of(byte opcode) => Table[opcode];

    private static Signature?[] Build()
    {
        var table = new Signature?[256];
        void Range(byte first, byte last, Signature signature)
        {
            for (int op = first; op <= last; op++) table[op] = signature;
        }
        Signature Unary(ValType operand, ValType result) => new(operand, 0, result);
        Signature Binary(ValType operand, ValType result) => new(operand, operand, result);
        const ValType i32 = ValType.I32, i64 = ValType.I64, f32 = ValType.F32, f64 = ValType.F64;

        table[Opcodes.I32Eqz] = Unary(i32, i32);
        Range(Opcodes.I32Eq, Opcodes.I32GeU, Binary(i32, i32));
        table[Opcodes.I64Eqz] = Unary(i64, i32);
        Range(Opcodes.I64Eq, Opcodes.I64GeU, Binary(i64, i32));
        Range(Opcodes.F32Eq, Opcodes.F32Ge, Binary(f32, i32));
        Range(Opcodes.F64Eq, Opcodes.F64Ge, Binary(f64, i32));
        Range(Opcodes.I32Clz, Opcodes.I32Popcnt, Unary(i32, i32));
        Range(Opcodes.I32Add, Opcodes.I32Rotr, Binary(i32, i32));
        Range(Opcodes.I64Clz, Opcodes.I64Popcnt, Unary(i64, i64));
        Range(Opcodes.I64Add, Opcodes.I64Rotr, Binary(i64, i64));
        Range(Opcodes.F32Abs, Opcodes.F32Sqrt, Unary(f32, f32));
        Range(Opcodes.F32Add, Opcodes.F32Copysign, Binary(f32, f32));
        Range(Opcodes.F64Abs, Opcodes.F64Sqrt, Unary(f64, f64));
        Range(Opcodes.F64Add, Opcodes.F64Copysign, Binary(f64, f64));
        table[Opcodes.I32WrapI64] = Unary(i64, i32);
        Range(Opcodes.I32TruncF32S, Opcodes.I32TruncF32U, Unary(f32, i32));
        Range(Opcodes.I32TruncF64S, Opcodes.I32TruncF64U, Unary(f64, i32));
        Range(Opcodes.I64ExtendI32S, Opcodes.I64ExtendI32U, Unary(i32, i64));
        Range(Opcodes.I64TruncF32S, Opcodes.I64TruncF32U, Unary(f32, i64));
        Range(Opcodes.I64TruncF64S, Opcodes.I64TruncF64U, Unary(f64, i64));
        Range(Opcodes.F32ConvertI32S, Opcodes.F32ConvertI32U, Unary(i32, f32));
        Range(Opcodes.F32ConvertI64S, Opcodes.F32ConvertI64U, Unary(i64, f32));
        table[Opcodes.F32DemoteF64] = Unary(f64, f32);
        Range(Opcodes.F64ConvertI32S, Opcodes.F64ConvertI32U, Unary(i32, f64));
        Range(Opcodes.F64ConvertI64S, Opcodes.F64ConvertI64U, Unary(i64, f64));
        table[Opcodes.F64PromoteF32] = Unary(f32, f64);
        table[Opcodes.I32ReinterpretF32] = Unary(f32, i32);
        table[Opcodes.I64ReinterpretF64] = Unary(f64, i64);
        table[Opcodes.F32ReinterpretI32] = Unary(i32, f32);
        table[Opcodes.F64ReinterpretI64] = Unary(i64, f64);
        Range(Opcodes.I32Extend8S, Opcodes.I32Extend16S, Unary(i32, i32));
        Range(Opcodes.I64Extend8S, Opcodes.I64Extend32S, Unary(i64, i64));
        return table;
    }
}
