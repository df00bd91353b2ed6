namespace Ferry.Wasm;

/// <summary>One instruction of a constant expression, with its immediate decoded.</summary>
/// <param name="Opcode">The opcode byte (i32.const, i64.const, f32.const, f64.const, ref.null, ref.func, global.get, or any other the validator must reject).</param>
/// <param name="Bits">The constant for *.const (f32/f64 as raw bits), or the reference type code for ref.null.</param>
/// <param name="Index">The function index for ref.func, the global index for global.get.</param>
public readonly record struct ConstantInstruction(byte Opcode, ulong Bits, uint Index);

/// <summary>An initializer expression (global init, segment offset, element item), without its final end.</summary>
public sealed class ConstantExpression
{
    public ConstantExpression(ConstantInstruction[] instructions) => Instructions = instructions;

    public ConstantInstruction[] Instructions { get; }

    public static ConstantExpression RefFunc(uint functionIndex) => new([new ConstantInstruction(Opcodes.RefFunc, 0, functionIndex)]);
}
