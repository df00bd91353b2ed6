namespace Ferry.Wasm.Binary;

/// <summary>
/// Decodes a function body's instructions without judging types: opcodes, immediates and block nesting.
/// The decoder runs it on every body so that malformed code is reported before any validation error, as
/// the spec's decode-then-validate order requires.
/// </summary>
public static class CodeScanner
{
    internal static void Scan(FunctionBody body)
    {
        var r = new WasmReader(body.Code.Span, body.CodeOffset);
        var depth = 1;
        while (depth > 0)
        {
            if (r.AtEnd) throw r.Error("unexpected end");
            var opcode = r.ReadByte();
            switch (opcode)
            {
                case Opcodes.Block or Opcodes.Loop or Opcodes.If:
                    depth++;
                    break;
                case Opcodes.End:
                    depth--;
                    break;
            }
            SkipImmediates(ref r, opcode);
        }
        if (!r.AtEnd) throw r.Error("section size mismatch");
    }

    /// <summary>Reads past the immediates of <paramref name="opcode"/> (already read), checking their encoding.</summary>
    public static void SkipImmediates(ref WasmReader r, byte opcode)
    {
        var offset = r.Offset - 1;
        switch (opcode)
        {
            case Opcodes.Unreachable or Opcodes.Nop or Opcodes.Else or Opcodes.End or Opcodes.Return or Opcodes.Drop or Opcodes.Select
                or Opcodes.RefIsNull:
                return;
            case Opcodes.Block or Opcodes.Loop or Opcodes.If:
                BlockType(ref r);
                return;
            case Opcodes.Br or Opcodes.BrIf or Opcodes.Call or Opcodes.LocalGet or Opcodes.LocalSet or Opcodes.LocalTee
                or Opcodes.GlobalGet or Opcodes.GlobalSet or Opcodes.TableGet or Opcodes.TableSet or Opcodes.RefFunc:
                r.ReadVarU32();
                return;
            case Opcodes.BrTable:
            {
                var count = r.ReadVarU32();
                if (count > r.Remaining) throw r.Error("unexpected end");
                for (var i = 0u; i <= count; i++) r.ReadVarU32();
                return;
            }
            case Opcodes.CallIndirect:
                r.ReadVarU32();
                r.ReadVarU32();
                return;
            case Opcodes.SelectTyped:
            {
                var count = r.ReadVarU32();
                if (count > r.Remaining) throw r.Error("unexpected end");
                for (var i = 0u; i < count; i++) ModuleDecoder.ReadValType(ref r);
                return;
            }
            case >= Opcodes.I32Load and <= Opcodes.I64Store32:
                r.ReadVarU32();
                r.ReadVarU32();
                return;
            case Opcodes.MemorySize or Opcodes.MemoryGrow:
                ZeroByte(ref r);
                return;
            case Opcodes.I32Const:
                r.ReadVarI32();
                return;
            case Opcodes.I64Const:
                r.ReadVarI64();
                return;
            case Opcodes.F32Const:
                r.ReadF32Bits();
                return;
            case Opcodes.F64Const:
                r.ReadF64Bits();
                return;
            case Opcodes.RefNull:
            {
                var typeOffset = r.Offset;
                if (r.ReadByte() is not (0x70 or 0x6F)) throw new MalformedModuleException("malformed reference type", typeOffset);
                return;
            }
            case >= Opcodes.I32Eqz and <= Opcodes.I64Extend32S:
                return;
            case Opcodes.PrefixFC:
                Prefixed(ref r, offset);
                return;
            case Opcodes.PrefixSimd:
                throw new UnsupportedFeatureException("SIMD", offset);
            default:
                throw LaterProposals.IllegalOpcode(opcode, offset);
        }
    }

    private static void Prefixed(ref WasmReader r, int offset)
    {
        switch (r.ReadVarU32())
        {
            case <= OpcodesFC.I64TruncSatF64U:
                return;
            case OpcodesFC.MemoryInit:
                r.ReadVarU32();
                ZeroByte(ref r);
                return;
            case OpcodesFC.DataDrop or OpcodesFC.ElemDrop or OpcodesFC.TableGrow or OpcodesFC.TableSize or OpcodesFC.TableFill:
                r.ReadVarU32();
                return;
            case OpcodesFC.MemoryCopy:
                ZeroByte(ref r);
                ZeroByte(ref r);
                return;
            case OpcodesFC.MemoryFill:
                ZeroByte(ref r);
                return;
            case OpcodesFC.TableInit or OpcodesFC.TableCopy:
                r.ReadVarU32();
                r.ReadVarU32();
                return;
            default:
                throw new MalformedModuleException("illegal opcode", offset);
        }
    }

    private static void BlockType(ref WasmReader r)
    {
        var offset = r.Offset;
        var blockType = r.ReadVarS33();
        if (blockType >= -64) return;
        var code = (byte)(blockType & 0x7F);
        if (code == 0x7B) throw new UnsupportedFeatureException("SIMD", offset);
        if (code is not (0x7F or 0x7E or 0x7D or 0x7C or 0x70 or 0x6F)) throw new MalformedModuleException("malformed value type", offset);
    }

    private static void ZeroByte(ref WasmReader r)
    {
        var offset = r.Offset;
        if (r.ReadByte() != 0) throw new MalformedModuleException("zero byte expected", offset);
    }
}
