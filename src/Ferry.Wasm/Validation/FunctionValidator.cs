using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Validation;

/// <summary>
/// Validates function bodies with the operand and control stacks of the spec's appendix. One instance is
/// reused for every body, so its stacks are allocated once per module.
/// </summary>
internal sealed class FunctionValidator
{
    /// <summary>The type of a value in unreachable code, matching every type.</summary>
    private const ValType Unknown = 0;

    private struct ControlFrame
    {
        public byte Opcode;
        public ValType[] Start;
        public ValType[] End;
        public int Height;
        public bool Unreachable;
    }

    private readonly ModuleContext _context;
    private ValType[] _values = new ValType[64];
    private int _height;
    private ControlFrame[] _controls = new ControlFrame[16];
    private int _depth;
    private ValType[] _locals = [];
    private string _where = "";
    private int _offset;

    public FunctionValidator(ModuleContext context) => _context = context;

    private InvalidModuleException Invalid(string reason) => new(reason, $"{_where} at byte 0x{_offset:x}");

    public void Validate(uint functionIndex, FunctionBody body)
    {
        var type = _context.Functions[functionIndex];
        _where = $"function {functionIndex}";
        var localCount = type.Parameters.Length + body.LocalCount;
        if (_locals.Length < localCount) _locals = new ValType[localCount];
        type.Parameters.CopyTo(_locals, 0);
        var next = type.Parameters.Length;
        foreach (var group in body.Locals)
        {
            for (var i = 0u; i < group.Count; i++) _locals[next++] = group.Type;
        }
        _height = 0;
        _depth = 0;
        PushControl(Opcodes.Block, [], type.Results);

        var r = new WasmReader(body.Code.Span, body.CodeOffset);
        while (_depth > 0)
        {
            if (r.AtEnd) throw r.Error("unexpected end of section or function");
            _offset = r.Offset;
            Instruction(ref r, r.ReadByte(), localCount, type);
        }
        if (!r.AtEnd) throw new MalformedModuleException("section size mismatch", r.Offset);
    }

    private void Push(ValType type)
    {
        if (_height == _values.Length) Array.Resize(ref _values, _values.Length * 2);
        _values[_height++] = type;
    }

    private void Push(ValType[] types)
    {
        foreach (var type in types) Push(type);
    }

    private ValType Pop()
    {
        ref var frame = ref _controls[_depth - 1];
        if (_height == frame.Height)
        {
            if (frame.Unreachable) return Unknown;
            throw Invalid("type mismatch");
        }
        return _values[--_height];
    }

    private ValType Pop(ValType expected)
    {
        var actual = Pop();
        if (actual != expected && actual != Unknown && expected != Unknown) throw Invalid("type mismatch");
        return actual;
    }

    private void Pop(ValType[] types)
    {
        for (var i = types.Length - 1; i >= 0; i--) Pop(types[i]);
    }

    private void PushControl(byte opcode, ValType[] start, ValType[] end)
    {
        if (_depth == _controls.Length) Array.Resize(ref _controls, _controls.Length * 2);
        _controls[_depth++] = new ControlFrame { Opcode = opcode, Start = start, End = end, Height = _height };
        Push(start);
    }

    private ControlFrame PopControl()
    {
        if (_depth == 0) throw Invalid("type mismatch");
        var frame = _controls[_depth - 1];
        Pop(frame.End);
        if (_height != frame.Height) throw Invalid("type mismatch");
        _depth--;
        return frame;
    }

    private ValType[] LabelTypes(in ControlFrame frame) => frame.Opcode == Opcodes.Loop ? frame.Start : frame.End;

    private ref ControlFrame Label(uint depth)
    {
        if (depth >= _depth) throw Invalid("unknown label");
        return ref _controls[_depth - 1 - (int)depth];
    }

    private void MarkUnreachable()
    {
        ref var frame = ref _controls[_depth - 1];
        _height = frame.Height;
        frame.Unreachable = true;
    }

    private (ValType[] Start, ValType[] End) BlockType(ref WasmReader r)
    {
        var offset = r.Offset;
        var blockType = r.ReadVarS33();
        if (blockType == -64) return ([], []);
        if (blockType < 0)
        {
            var code = (byte)(blockType & 0x7F);
            return code switch
            {
                0x7F or 0x7E or 0x7D or 0x7C or 0x70 or 0x6F => ([], [(ValType)code]),
                0x7B => throw new UnsupportedFeatureException("SIMD", offset),
                _ => throw new MalformedModuleException("malformed value type", offset),
            };
        }
        if (blockType >= _context.Module.Types.Length) throw Invalid("unknown type");
        var type = _context.Module.Types[blockType];
        return (type.Parameters, type.Results);
    }

    private void RequireMemory()
    {
        if (_context.Memories.Length == 0) throw Invalid("unknown memory 0");
    }

    private TableType Table(uint index) => index < _context.Tables.Length ? _context.Tables[index] : throw Invalid("unknown table");

    private static void ZeroByte(ref WasmReader r)
    {
        var offset = r.Offset;
        if (r.ReadByte() != 0) throw new MalformedModuleException("zero byte expected", offset);
    }

    private void MemoryAccess(ref WasmReader r, int naturalAlignment)
    {
        var align = r.ReadVarU32();
        r.ReadVarU32();
        RequireMemory();
        if (align > naturalAlignment) throw Invalid("alignment must not be larger than natural");
    }

    private void Instruction(ref WasmReader r, byte opcode, int localCount, FuncType function)
    {
        switch (opcode)
        {
            case Opcodes.Unreachable:
                MarkUnreachable();
                return;
            case Opcodes.Nop:
                return;
            case Opcodes.Block:
            case Opcodes.Loop:
            {
                var (start, end) = BlockType(ref r);
                Pop(start);
                PushControl(opcode, start, end);
                return;
            }
            case Opcodes.If:
            {
                var (start, end) = BlockType(ref r);
                Pop(ValType.I32);
                Pop(start);
                PushControl(opcode, start, end);
                return;
            }
            case Opcodes.Else:
            {
                var frame = PopControl();
                if (frame.Opcode != Opcodes.If) throw Invalid("else without if");
                PushControl(Opcodes.Else, frame.Start, frame.End);
                return;
            }
            case Opcodes.End:
            {
                var frame = PopControl();
                if (frame.Opcode == Opcodes.If && !frame.Start.AsSpan().SequenceEqual(frame.End)) throw Invalid("type mismatch");
                Push(frame.End);
                return;
            }
            case Opcodes.Br:
            {
                var types = LabelTypes(Label(r.ReadVarU32()));
                Pop(types);
                MarkUnreachable();
                return;
            }
            case Opcodes.BrIf:
            {
                var types = LabelTypes(Label(r.ReadVarU32()));
                Pop(ValType.I32);
                Pop(types);
                Push(types);
                return;
            }
            case Opcodes.BrTable:
            {
                var count = r.ReadVarU32();
                if (count > r.Remaining) throw r.Error("unexpected end");
                var labels = new uint[count];
                for (var i = 0; i < count; i++) labels[i] = r.ReadVarU32();
                var defaultTypes = LabelTypes(Label(r.ReadVarU32()));
                Pop(ValType.I32);
                foreach (var label in labels)
                {
                    var types = LabelTypes(Label(label));
                    if (types.Length != defaultTypes.Length) throw Invalid("type mismatch");
                    var popped = new ValType[types.Length];
                    for (var i = types.Length - 1; i >= 0; i--) popped[i] = Pop(types[i]);
                    Push(popped);
                }
                Pop(defaultTypes);
                MarkUnreachable();
                return;
            }
            case Opcodes.Return:
                Pop(function.Results);
                MarkUnreachable();
                return;
            case Opcodes.Call:
            {
                var index = r.ReadVarU32();
                if (index >= _context.Functions.Length) throw Invalid("unknown function");
                var type = _context.Functions[index];
                Pop(type.Parameters);
                Push(type.Results);
                return;
            }
            case Opcodes.CallIndirect:
            {
                var typeIndex = r.ReadVarU32();
                var table = Table(r.ReadVarU32());
                if (typeIndex >= _context.Module.Types.Length) throw Invalid("unknown type");
                if (table.ElementType != ValType.FuncRef) throw Invalid("type mismatch");
                var type = _context.Module.Types[typeIndex];
                Pop(ValType.I32);
                Pop(type.Parameters);
                Push(type.Results);
                return;
            }
            case Opcodes.Drop:
                Pop();
                return;
            case Opcodes.Select:
            {
                Pop(ValType.I32);
                var first = Pop();
                var second = Pop();
                if (first.IsReference() || second.IsReference()) throw Invalid("type mismatch");
                if (first != second && first != Unknown && second != Unknown) throw Invalid("type mismatch");
                Push(first == Unknown ? second : first);
                return;
            }
            case Opcodes.SelectTyped:
            {
                var count = r.ReadVarU32();
                if (count != 1) throw Invalid("invalid result arity");
                var type = ModuleDecoder.ReadValType(ref r);
                Pop(ValType.I32);
                Pop(type);
                Pop(type);
                Push(type);
                return;
            }
            case Opcodes.LocalGet:
                Push(Local(r.ReadVarU32(), localCount));
                return;
            case Opcodes.LocalSet:
                Pop(Local(r.ReadVarU32(), localCount));
                return;
            case Opcodes.LocalTee:
            {
                var type = Local(r.ReadVarU32(), localCount);
                Pop(type);
                Push(type);
                return;
            }
            case Opcodes.GlobalGet:
                Push(Global(r.ReadVarU32()).Type);
                return;
            case Opcodes.GlobalSet:
            {
                var global = Global(r.ReadVarU32());
                if (!global.Mutable) throw Invalid("global is immutable");
                Pop(global.Type);
                return;
            }
            case Opcodes.TableGet:
            {
                var table = Table(r.ReadVarU32());
                Pop(ValType.I32);
                Push(table.ElementType);
                return;
            }
            case Opcodes.TableSet:
            {
                var table = Table(r.ReadVarU32());
                Pop(table.ElementType);
                Pop(ValType.I32);
                return;
            }
            case >= Opcodes.I32Load and <= Opcodes.I64Load32U:
            {
                var (type, alignment) = LoadShape(opcode);
                MemoryAccess(ref r, alignment);
                Pop(ValType.I32);
                Push(type);
                return;
            }
            case >= Opcodes.I32Store and <= Opcodes.I64Store32:
            {
                var (type, alignment) = StoreShape(opcode);
                MemoryAccess(ref r, alignment);
                Pop(type);
                Pop(ValType.I32);
                return;
            }
            case Opcodes.MemorySize:
                ZeroByte(ref r);
                RequireMemory();
                Push(ValType.I32);
                return;
            case Opcodes.MemoryGrow:
                ZeroByte(ref r);
                RequireMemory();
                Pop(ValType.I32);
                Push(ValType.I32);
                return;
            case Opcodes.I32Const:
                r.ReadVarI32();
                Push(ValType.I32);
                return;
            case Opcodes.I64Const:
                r.ReadVarI64();
                Push(ValType.I64);
                return;
            case Opcodes.F32Const:
                r.ReadF32Bits();
                Push(ValType.F32);
                return;
            case Opcodes.F64Const:
                r.ReadF64Bits();
                Push(ValType.F64);
                return;
            case Opcodes.RefNull:
            {
                var offset = r.Offset;
                var code = r.ReadByte();
                if (code is not (0x70 or 0x6F)) throw new MalformedModuleException("malformed reference type", offset);
                Push((ValType)code);
                return;
            }
            case Opcodes.RefIsNull:
            {
                var type = Pop();
                if (type != Unknown && !type.IsReference()) throw Invalid("type mismatch");
                Push(ValType.I32);
                return;
            }
            case Opcodes.RefFunc:
            {
                var index = r.ReadVarU32();
                if (index >= _context.Functions.Length) throw Invalid("unknown function");
                if (!_context.DeclaredReferences.Contains(index)) throw Invalid("undeclared function reference");
                Push(ValType.FuncRef);
                return;
            }
            case Opcodes.PrefixFC:
                Prefixed(ref r);
                return;
            case Opcodes.PrefixSimd:
                throw new UnsupportedFeatureException("SIMD", _offset);
            default:
                if (NumericSignatures.Of(opcode) is not { } signature) throw Binary.LaterProposals.IllegalOpcode(opcode, _offset);
                if (signature.Second != Unknown) Pop(signature.Second);
                Pop(signature.First);
                Push(signature.Result);
                return;
        }
    }

    private void Prefixed(ref WasmReader r)
    {
        var sub = r.ReadVarU32();
        switch (sub)
        {
            case <= OpcodesFC.I64TruncSatF64U:
                Pop(sub is 0 or 1 or 4 or 5 ? ValType.F32 : ValType.F64);
                Push(sub < 4 ? ValType.I32 : ValType.I64);
                return;
            case OpcodesFC.MemoryInit:
            {
                var segment = r.ReadVarU32();
                ZeroByte(ref r);
                RequireMemory();
                DataSegment(segment);
                PopIndices(3);
                return;
            }
            case OpcodesFC.DataDrop:
                DataSegment(r.ReadVarU32());
                return;
            case OpcodesFC.MemoryCopy:
                ZeroByte(ref r);
                ZeroByte(ref r);
                RequireMemory();
                PopIndices(3);
                return;
            case OpcodesFC.MemoryFill:
                ZeroByte(ref r);
                RequireMemory();
                PopIndices(3);
                return;
            case OpcodesFC.TableInit:
            {
                var segment = Element(r.ReadVarU32());
                var table = Table(r.ReadVarU32());
                if (table.ElementType != segment.Type) throw Invalid("type mismatch");
                PopIndices(3);
                return;
            }
            case OpcodesFC.ElemDrop:
                Element(r.ReadVarU32());
                return;
            case OpcodesFC.TableCopy:
            {
                var destination = Table(r.ReadVarU32());
                var source = Table(r.ReadVarU32());
                if (destination.ElementType != source.ElementType) throw Invalid("type mismatch");
                PopIndices(3);
                return;
            }
            case OpcodesFC.TableGrow:
            {
                var table = Table(r.ReadVarU32());
                Pop(ValType.I32);
                Pop(table.ElementType);
                Push(ValType.I32);
                return;
            }
            case OpcodesFC.TableSize:
                Table(r.ReadVarU32());
                Push(ValType.I32);
                return;
            case OpcodesFC.TableFill:
            {
                var table = Table(r.ReadVarU32());
                Pop(ValType.I32);
                Pop(table.ElementType);
                Pop(ValType.I32);
                return;
            }
            default:
                throw new MalformedModuleException("illegal opcode", _offset);
        }
    }

    private void PopIndices(int count)
    {
        for (var i = 0; i < count; i++) Pop(ValType.I32);
    }

    private void DataSegment(uint index)
    {
        // Without a data count section, indices are malformed if data segments exist, else simply unknown.
        if (_context.Module.DataCount is null && _context.Module.Data.Length > 0) throw new MalformedModuleException("data count section required", _offset);
        if (index >= (_context.Module.DataCount ?? 0)) throw Invalid("unknown data segment");
    }

    private ElementSegment Element(uint index) =>
        index < _context.Module.Elements.Length ? _context.Module.Elements[index] : throw Invalid("unknown elem segment");

    private ValType Local(uint index, int localCount) => index < localCount ? _locals[index] : throw Invalid("unknown local");

    private GlobalType Global(uint index) => index < _context.Globals.Length ? _context.Globals[index] : throw Invalid("unknown global");

    private static (ValType Type, int Alignment) LoadShape(byte opcode) => opcode switch
    {
        Opcodes.I32Load => (ValType.I32, 2),
        Opcodes.I64Load => (ValType.I64, 3),
        Opcodes.F32Load => (ValType.F32, 2),
        Opcodes.F64Load => (ValType.F64, 3),
        Opcodes.I32Load8S or Opcodes.I32Load8U => (ValType.I32, 0),
        Opcodes.I32Load16S or Opcodes.I32Load16U => (ValType.I32, 1),
        Opcodes.I64Load8S or Opcodes.I64Load8U => (ValType.I64, 0),
        Opcodes.I64Load16S or Opcodes.I64Load16U => (ValType.I64, 1),
        _ => (ValType.I64, 2),
    };

    private static (ValType Type, int Alignment) StoreShape(byte opcode) => opcode switch
    {
        Opcodes.I32Store => (ValType.I32, 2),
        Opcodes.I64Store => (ValType.I64, 3),
        Opcodes.F32Store => (ValType.F32, 2),
        Opcodes.F64Store => (ValType.F64, 3),
        Opcodes.I32Store8 => (ValType.I32, 0),
        Opcodes.I32Store16 => (ValType.I32, 1),
        Opcodes.I64Store8 => (ValType.I64, 0),
        Opcodes.I64Store16 => (ValType.I64, 1),
        _ => (ValType.I64, 2),
    };
}
