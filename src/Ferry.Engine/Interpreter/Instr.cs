using System.Runtime.InteropServices;

namespace Ferry.Engine.Interpreter;

/// <summary>
/// One internal instruction. Operands name slots of the frame (locals first, then the operand stack at
/// statically known heights): A is the destination of value-producing ops, B and C are sources, Imm
/// holds a constant, memory offset or further slot.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Instr
{
    public Op Op;
    public int A;
    public int B;
    public int C;
    public ulong Imm;

    public Instr(Op op, int a = 0, int b = 0, int c = 0, ulong imm = 0)
    {
        Op = op;
        A = a;
        B = b;
        C = c;
        Imm = imm;
    }

    public override readonly string ToString() => $"{Op} a={A} b={B} c={C} imm={Imm}";
}
