using Ferry.Wasm;
using Ferry.Wasm.Binary;

namespace Ferry.Engine.Interpreter;

/// <summary>
/// Finds whether a Wasm instruction of a body is a call that the translator keeps, by decoding alone: a restored caller
/// frame is checked with it, and its function translated only when the frame is returned to. The translator drops
/// unreachable code (after unreachable, br, br_table and return, up to the end of a block that something branches to, or an
/// else), so a call there has no place to return to; this follows the same rule, and a test holds the two to agreement.
/// </summary>
internal static class LiveCalls
{
    private enum Kind : byte
    {
        Function,
        Block,
        Loop,
        /// <summary>An if whose else has not come: its false path reaches the end.</summary>
        If,
        Else,
    }

    /// <summary>Whether instruction <paramref name="instruction"/> (counted as the translator counts them) is a reachable call or call_indirect.</summary>
    public static bool IsLiveCall(FunctionBody body, int instruction)
    {
        if (instruction < 0) return false;
        var r = new WasmReader(body.Code.Span, body.CodeOffset);
        // Each open control, and whether a reachable branch (or an if's false path) lands at its end.
        var controls = new List<(Kind Kind, bool Incoming)> { (Kind.Function, false) };
        var dead = false;
        var deadDepth = 0;
        for (var index = 0; controls.Count > 0 && !r.AtEnd; index++)
        {
            var opcode = r.ReadByte();
            if (dead)
            {
                if (index == instruction) return false;
                if (SkipsUnreachable(ref r, opcode, ref deadDepth)) continue;
            }
            if (index == instruction) return opcode is Opcodes.Call or Opcodes.CallIndirect;
            switch (opcode)
            {
                case Opcodes.Unreachable or Opcodes.Return:
                    dead = true;
                    break;
                case Opcodes.Block or Opcodes.Loop or Opcodes.If:
                    CodeScanner.SkipImmediates(ref r, opcode);
                    controls.Add((opcode == Opcodes.Block ? Kind.Block : opcode == Opcodes.Loop ? Kind.Loop : Kind.If, false));
                    break;
                case Opcodes.Else:
                    // The then-part, if it reached its end, branches past the else.
                    controls[^1] = (Kind.Else, controls[^1].Incoming || !dead);
                    dead = false;
                    break;
                case Opcodes.End:
                {
                    var control = controls[^1];
                    controls.RemoveAt(controls.Count - 1);
                    dead = control.Kind != Kind.Function && dead && !control.Incoming && control.Kind != Kind.If;
                    break;
                }
                case Opcodes.Br:
                    BranchTo(controls, r.ReadVarU32());
                    dead = true;
                    break;
                case Opcodes.BrIf:
                    BranchTo(controls, r.ReadVarU32());
                    break;
                case Opcodes.BrTable:
                {
                    var count = r.ReadVarU32();
                    for (var i = 0u; i <= count; i++) BranchTo(controls, r.ReadVarU32());
                    dead = true;
                    break;
                }
                default:
                    CodeScanner.SkipImmediates(ref r, opcode);
                    break;
            }
        }
        return false;
    }

    /// <summary>
    /// In unreachable code, reads past <paramref name="opcode"/> and returns true, unless it is the end or else that ends
    /// that code (at <paramref name="depth"/> 0, the blocks opened within it counted there): the translator's rule, shared.
    /// </summary>
    public static bool SkipsUnreachable(ref WasmReader r, byte opcode, ref int depth)
    {
        switch (opcode)
        {
            case Opcodes.Block or Opcodes.Loop or Opcodes.If:
                depth++;
                CodeScanner.SkipImmediates(ref r, opcode);
                return true;
            case Opcodes.End when depth > 0:
                depth--;
                return true;
            case Opcodes.Else when depth > 0:
                return true;
            case Opcodes.End or Opcodes.Else:
                return false;
            default:
                CodeScanner.SkipImmediates(ref r, opcode);
                return true;
        }
    }

    /// <summary>A reachable branch: a block's or if's end becomes reachable (a loop's label is its start, a function's a return).</summary>
    private static void BranchTo(List<(Kind Kind, bool Incoming)> controls, uint depth)
    {
        if (depth >= controls.Count) return;
        ref var control = ref System.Runtime.InteropServices.CollectionsMarshal.AsSpan(controls)[controls.Count - 1 - (int)depth];
        if (control.Kind is not (Kind.Loop or Kind.Function)) control.Incoming = true;
    }
}
