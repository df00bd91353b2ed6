using Ferry.Wasm;

namespace Ferry.Engine.Interpreter;

/// <summary>How Wasm numeric opcodes map to internal ops, and which ops have immediate and branch forms.</summary>
internal static class NumericOps
{
    private static readonly Op?[] UnaryOps = new Op?[256];
    private static readonly Op?[] BinaryOps = new Op?[256];
    private static readonly Dictionary<Op, Op> Immediate = [];
    private static readonly Dictionary<Op, (Op Taken, Op Negated)> Branches = [];
    private static readonly HashSet<Op> Commutative =
    [
        Op.I32Add, Op.I32Mul, Op.I32And, Op.I32Or, Op.I32Xor, Op.I32Eq, Op.I32Ne,
        Op.I64Add, Op.I64Mul, Op.I64And, Op.I64Or, Op.I64Xor, Op.I64Eq, Op.I64Ne,
    ];

    static NumericOps()
    {
        for (int opcode = Opcodes.I32Eqz; opcode <= Opcodes.F64PromoteF32; opcode++)
        {
            var op = Op.I32Eqz + (opcode - Opcodes.I32Eqz);
            if (IsUnaryOpcode(opcode)) UnaryOps[opcode] = op;
            else BinaryOps[opcode] = op;
        }
        for (int opcode = Opcodes.I32Extend8S; opcode <= Opcodes.I64Extend32S; opcode++)
        {
            UnaryOps[opcode] = Op.I32Extend8S + (opcode - Opcodes.I32Extend8S);
        }

        Op[] i32 = [Op.I32Add, Op.I32Sub, Op.I32Mul, Op.I32And, Op.I32Or, Op.I32Xor, Op.I32Shl, Op.I32ShrS, Op.I32ShrU,
            Op.I32Eq, Op.I32Ne, Op.I32LtS, Op.I32LtU, Op.I32GtS, Op.I32GtU, Op.I32LeS, Op.I32LeU, Op.I32GeS, Op.I32GeU];
        for (var i = 0; i < i32.Length; i++) Immediate[i32[i]] = Op.I32AddImm + i;
        Op[] i64 = [Op.I64Add, Op.I64Sub, Op.I64Mul, Op.I64And, Op.I64Or, Op.I64Xor, Op.I64Shl, Op.I64ShrS, Op.I64ShrU,
            Op.I64Eq, Op.I64Ne, Op.I64LtS, Op.I64LtU, Op.I64GtS, Op.I64GtU, Op.I64LeS, Op.I64LeU, Op.I64GeS, Op.I64GeU];
        for (var i = 0; i < i64.Length; i++) Immediate[i64[i]] = Op.I64AddImm + i;

        Branches[Op.I32Eqz] = (Op.BrI32Eqz, Op.BrI32Nez);
        // Register and immediate compares share the order Eq Ne LtS LtU GtS GtU LeS LeU GeS GeU.
        Op[] negations = [Op.I32Ne, Op.I32Eq, Op.I32GeS, Op.I32GeU, Op.I32LeS, Op.I32LeU, Op.I32GtS, Op.I32GtU, Op.I32LtS, Op.I32LtU];
        for (var i = 0; i < negations.Length; i++)
        {
            var compare = Op.I32Eq + i;
            var negated = negations[i] - Op.I32Eq;
            Branches[compare] = (Op.BrI32Eq + i, Op.BrI32Eq + negated);
            Branches[Op.I32EqImm + i] = (Op.BrI32EqImm + i, Op.BrI32EqImm + negated);
        }
    }

    private static bool IsUnaryOpcode(int opcode) => opcode switch
    {
        Opcodes.I32Eqz or Opcodes.I64Eqz => true,
        >= Opcodes.I32Clz and <= Opcodes.I32Popcnt => true,
        >= Opcodes.I64Clz and <= Opcodes.I64Popcnt => true,
        >= Opcodes.F32Abs and <= Opcodes.F32Sqrt => true,
        >= Opcodes.F64Abs and <= Opcodes.F64Sqrt => true,
        >= Opcodes.I32WrapI64 => true,
        _ => false,
    };

    public static Op? Unary(byte opcode) => UnaryOps[opcode];
    public static Op? Binary(byte opcode) => BinaryOps[opcode];
    public static Op? WithImmediate(Op op) => Immediate.TryGetValue(op, out var immediate) ? immediate : null;
    public static bool IsCommutative(Op op) => Commutative.Contains(op);

    /// <summary>The compare-and-branch op that branches when <paramref name="compare"/>'s result is non-zero (or zero, when negated).</summary>
    public static Op? CompareBranch(Op compare, bool negate) =>
        Branches.TryGetValue(compare, out var forms) ? (negate ? forms.Negated : forms.Taken) : null;
}
