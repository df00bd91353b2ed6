namespace Ferry.Engine.Interpreter;

/// <summary>Internal opcodes. Dense from zero so the run loop's switch compiles to a jump table.</summary>
internal enum Op : int
{
    // Block heads: charge fuel for the straight-line block that follows, and honour pause requests.
    FuelFast, // Imm = cost in Wasm instructions, B = step-code pc of the same position
    FuelStep, // A = Wasm instruction index, B = fast-code pc of a block head here or -1, C = that block's cost

    Unreachable,
    Br,       // A = target pc
    BrIf,     // A = target pc, B = condition slot
    BrIfNot,  // A = target pc, B = condition slot
    BrTable,  // B = index slot, A = first entry in the function's branch table, C = entry count (last is default)
    Return,
    CallWasm, // A = callee index in CompiledFunction.Callees, B = argument base slot
    CallHost, // A = callee index in CompiledFunction.HostCallees, B = argument base slot
    CallIndirect, // A = expected type id, B = argument base slot, C = table index, Imm = element index slot

    Copy,     // A = B
    Const,    // A = Imm
    Select,   // A = Imm != 0 ? B : C (Imm = condition slot)
    GlobalGet, // A = global B
    GlobalSet, // global A = B
    TableGet, // A = table B [C]
    TableSet, // table A [B] = C

    I32Load, I64Load, F32Load, F64Load,
    I32Load8S, I32Load8U, I32Load16S, I32Load16U,
    I64Load8S, I64Load8U, I64Load16S, I64Load16U, I64Load32S, I64Load32U,
    I32Store, I64Store, F32Store, F64Store, I32Store8, I32Store16, I64Store8, I64Store16, I64Store32,
    MemorySize, MemoryGrow, // A = result, B = delta slot
    MemoryInit, DataDrop, MemoryCopy, MemoryFill, // B = base of consecutive operand slots, A = segment
    TableInit, ElemDrop, TableCopy, TableGrow, TableSize, TableFill,

    I32Eqz, I32Eq, I32Ne, I32LtS, I32LtU, I32GtS, I32GtU, I32LeS, I32LeU, I32GeS, I32GeU,
    I64Eqz, I64Eq, I64Ne, I64LtS, I64LtU, I64GtS, I64GtU, I64LeS, I64LeU, I64GeS, I64GeU,
    F32Eq, F32Ne, F32Lt, F32Gt, F32Le, F32Ge,
    F64Eq, F64Ne, F64Lt, F64Gt, F64Le, F64Ge,
    I32Clz, I32Ctz, I32Popcnt, I32Add, I32Sub, I32Mul, I32DivS, I32DivU, I32RemS, I32RemU,
    I32And, I32Or, I32Xor, I32Shl, I32ShrS, I32ShrU, I32Rotl, I32Rotr,
    I64Clz, I64Ctz, I64Popcnt, I64Add, I64Sub, I64Mul, I64DivS, I64DivU, I64RemS, I64RemU,
    I64And, I64Or, I64Xor, I64Shl, I64ShrS, I64ShrU, I64Rotl, I64Rotr,
    F32Abs, F32Neg, F32Ceil, F32Floor, F32Trunc, F32Nearest, F32Sqrt,
    F32Add, F32Sub, F32Mul, F32Div, F32Min, F32Max, F32Copysign,
    F64Abs, F64Neg, F64Ceil, F64Floor, F64Trunc, F64Nearest, F64Sqrt,
    F64Add, F64Sub, F64Mul, F64Div, F64Min, F64Max, F64Copysign,
    I32WrapI64, I32TruncF32S, I32TruncF32U, I32TruncF64S, I32TruncF64U,
    I64ExtendI32S, I64ExtendI32U, I64TruncF32S, I64TruncF32U, I64TruncF64S, I64TruncF64U,
    F32ConvertI32S, F32ConvertI32U, F32ConvertI64S, F32ConvertI64U, F32DemoteF64,
    F64ConvertI32S, F64ConvertI32U, F64ConvertI64S, F64ConvertI64U, F64PromoteF32,
    I32Extend8S, I32Extend16S, I64Extend8S, I64Extend16S, I64Extend32S,
    I32TruncSatF32S, I32TruncSatF32U, I32TruncSatF64S, I32TruncSatF64U,
    I64TruncSatF32S, I64TruncSatF32U, I64TruncSatF64S, I64TruncSatF64U,

    // Register forms with a constant right operand (Imm).
    I32AddImm, I32SubImm, I32MulImm, I32AndImm, I32OrImm, I32XorImm, I32ShlImm, I32ShrSImm, I32ShrUImm,
    I32EqImm, I32NeImm, I32LtSImm, I32LtUImm, I32GtSImm, I32GtUImm, I32LeSImm, I32LeUImm, I32GeSImm, I32GeUImm,
    I64AddImm, I64SubImm, I64MulImm, I64AndImm, I64OrImm, I64XorImm, I64ShlImm, I64ShrSImm, I64ShrUImm,
    I64EqImm, I64NeImm, I64LtSImm, I64LtUImm, I64GtSImm, I64GtUImm, I64LeSImm, I64LeUImm, I64GeSImm, I64GeUImm,

    // Compare-and-branch: branch to A when (B op C) holds; the Imm forms compare B with Imm.
    BrI32Eqz, BrI32Nez, BrI32Eq, BrI32Ne, BrI32LtS, BrI32LtU, BrI32GtS, BrI32GtU, BrI32LeS, BrI32LeU, BrI32GeS, BrI32GeU,
    BrI32EqImm, BrI32NeImm, BrI32LtSImm, BrI32LtUImm, BrI32GtSImm, BrI32GtUImm, BrI32LeSImm, BrI32LeUImm, BrI32GeSImm, BrI32GeUImm,
}
