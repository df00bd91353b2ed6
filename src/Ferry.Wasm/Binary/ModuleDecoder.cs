namespace Ferry.Wasm.Binary;

/// <summary>
/// Decodes the binary format into a <see cref="Module"/>: every section in the spec's order, custom sections
/// kept, function bodies left undecoded. Errors use the spec's wording for malformed modules.
/// </summary>
internal static class ModuleDecoder
{
    private const uint Magic = 0x6D736100;
    private const uint Version = 1;
    /// <summary>Ferry's limit on a function's declared locals; more is rejected as "too many locals".</summary>
    public const uint MaxLocals = 50_000;

    private enum SectionId : byte
    {
        Custom = 0, Type = 1, Import = 2, Function = 3, Table = 4, Memory = 5, Global = 6, Export = 7, Start = 8,
        Element = 9, Code = 10, Data = 11, DataCount = 12,
    }

    /// <summary>Position of each section id in the required order (data count sits between element and code).</summary>
    private static int OrderOf(SectionId id) => id switch
    {
        SectionId.DataCount => 10,
        SectionId.Code => 11,
        SectionId.Data => 12,
        _ => (int)id,
    };

    public static Module Decode(ReadOnlyMemory<byte> bytes)
    {
        var r = new WasmReader(bytes.Span);
        if (r.Remaining < 4 || r.ReadF32Bits() != Magic) throw new MalformedModuleException("magic header not detected", 0);
        if (r.Remaining < 4) throw r.Error("unexpected end");
        if (r.ReadF32Bits() != Version) throw new MalformedModuleException("unknown binary version", 4);

        var builder = new Builder();
        var lastOrder = 0;
        while (!r.AtEnd)
        {
            var idOffset = r.Offset;
            var id = r.ReadByte();
            if (id > (byte)SectionId.DataCount) throw new MalformedModuleException("malformed section id", idOffset);
            var size = r.ReadVarU32();
            if (size > r.Remaining) throw r.Error("length out of bounds");
            var start = r.Position;
            var section = new WasmReader(bytes.Span.Slice(start, (int)size), r.Offset);
            r.Position = start + (int)size;
            var sectionId = (SectionId)id;
            if (sectionId == SectionId.Custom)
            {
                builder.Custom.Add(ReadCustom(ref section, bytes, start));
                continue;
            }
            var order = OrderOf(sectionId);
            if (order <= lastOrder) throw new MalformedModuleException("unexpected content after last section", idOffset);
            lastOrder = order;
            ReadSection(ref section, sectionId, builder, bytes, start);
            if (!section.AtEnd) throw section.Error("section size mismatch");
        }
        if (builder.FunctionTypes.Length != builder.Codes.Length)
            throw new MalformedModuleException("function and code section have inconsistent lengths", bytes.Length);
        if (builder.DataCount is { } count && count != builder.Data.Length)
            throw new MalformedModuleException("data count and data section have inconsistent lengths", bytes.Length);
        foreach (var body in builder.Codes) CodeScanner.Scan(body);
        return builder.Build(bytes);
    }

    private static CustomSection ReadCustom(ref WasmReader r, ReadOnlyMemory<byte> bytes, int sectionStart)
    {
        var name = r.ReadName();
        var contentStart = sectionStart + r.Position;
        var content = bytes.Slice(contentStart, r.Remaining);
        r.Position += r.Remaining;
        return new CustomSection { Name = name, Content = content, Offset = contentStart };
    }

    private static void ReadSection(ref WasmReader r, SectionId id, Builder b, ReadOnlyMemory<byte> bytes, int sectionStart)
    {
        switch (id)
        {
            case SectionId.Type:
                b.Types = ReadVector(ref r, static (ref WasmReader r) => ReadFuncType(ref r));
                break;
            case SectionId.Import:
                b.Imports = ReadVector(ref r, static (ref WasmReader r) => ReadImport(ref r));
                break;
            case SectionId.Function:
                b.FunctionTypes = ReadVector(ref r, static (ref WasmReader r) => r.ReadVarU32());
                break;
            case SectionId.Table:
                b.Tables = ReadVector(ref r, static (ref WasmReader r) => ReadTableType(ref r));
                break;
            case SectionId.Memory:
                b.Memories = ReadVector(ref r, static (ref WasmReader r) => new MemoryType(ReadLimits(ref r)));
                break;
            case SectionId.Global:
                b.Globals = ReadVector(ref r, static (ref WasmReader r) =>
                    new Global { Type = ReadGlobalType(ref r), Init = ReadConstantExpression(ref r) });
                break;
            case SectionId.Export:
                b.Exports = ReadVector(ref r, static (ref WasmReader r) =>
                {
                    var name = r.ReadName();
                    var kindOffset = r.Offset;
                    var kind = r.ReadByte();
                    if (kind > 3) throw new MalformedModuleException("malformed export kind", kindOffset);
                    return new Export { Name = name, Kind = (ExternKind)kind, Index = r.ReadVarU32() };
                });
                break;
            case SectionId.Start:
                b.Start = r.ReadVarU32();
                break;
            case SectionId.Element:
                b.Elements = ReadVector(ref r, static (ref WasmReader r) => ReadElement(ref r));
                break;
            case SectionId.DataCount:
                b.DataCount = r.ReadVarU32();
                break;
            case SectionId.Code:
            {
                var count = ReadCount(ref r);
                var codes = new FunctionBody[count];
                for (var i = 0; i < count; i++) codes[i] = ReadBody(ref r, bytes, sectionStart);
                b.Codes = codes;
                break;
            }
            case SectionId.Data:
            {
                var count = ReadCount(ref r);
                var data = new DataSegment[count];
                for (var i = 0; i < count; i++) data[i] = ReadData(ref r, bytes, sectionStart);
                b.Data = data;
                break;
            }
        }
    }

    private delegate T ItemReader<out T>(ref WasmReader r);

    /// <summary>A vector's length, refusing counts the remaining bytes cannot possibly hold.</summary>
    private static int ReadCount(ref WasmReader r)
    {
        var count = r.ReadVarU32();
        if (count > r.Remaining) throw r.Error("length out of bounds");
        return (int)count;
    }

    private static T[] ReadVector<T>(ref WasmReader r, ItemReader<T> read)
    {
        var count = ReadCount(ref r);
        var items = new T[count];
        for (var i = 0; i < count; i++) items[i] = read(ref r);
        return items;
    }

    internal static ValType ReadValType(ref WasmReader r)
    {
        var offset = r.Offset;
        var code = r.ReadByte();
        return code switch
        {
            0x7F or 0x7E or 0x7D or 0x7C or 0x70 or 0x6F => (ValType)code,
            0x7B => throw new UnsupportedFeatureException("SIMD", offset),
            _ => throw new MalformedModuleException("malformed value type", offset),
        };
    }

    private static ValType ReadRefType(ref WasmReader r)
    {
        var offset = r.Offset;
        var code = r.ReadByte();
        return code is 0x70 or 0x6F ? (ValType)code : throw new MalformedModuleException("malformed reference type", offset);
    }

    private static FuncType ReadFuncType(ref WasmReader r)
    {
        var offset = r.Offset;
        if (r.ReadByte() != 0x60) throw new MalformedModuleException("integer representation too long", offset);
        var parameters = ReadVector(ref r, static (ref WasmReader r) => ReadValType(ref r));
        var results = ReadVector(ref r, static (ref WasmReader r) => ReadValType(ref r));
        return new FuncType(parameters, results);
    }

    private static Limits ReadLimits(ref WasmReader r)
    {
        var offset = r.Offset;
        var flags = r.ReadByte();
        return flags switch
        {
            0 => new Limits(r.ReadVarU32(), null),
            1 => new Limits(r.ReadVarU32(), r.ReadVarU32()),
            _ => throw LaterProposals.LimitsFlag(flags, offset),
        };
    }

    private static TableType ReadTableType(ref WasmReader r)
    {
        var element = ReadRefType(ref r);
        return new TableType(element, ReadLimits(ref r));
    }

    private static GlobalType ReadGlobalType(ref WasmReader r)
    {
        var type = ReadValType(ref r);
        var offset = r.Offset;
        var mutability = r.ReadByte();
        if (mutability > 1) throw new MalformedModuleException("malformed mutability", offset);
        return new GlobalType(type, mutability == 1);
    }

    private static Import ReadImport(ref WasmReader r)
    {
        var module = r.ReadName();
        var name = r.ReadName();
        var offset = r.Offset;
        var kind = r.ReadByte();
        return kind switch
        {
            0 => new Import { Module = module, Name = name, Kind = ExternKind.Func, TypeIndex = r.ReadVarU32() },
            1 => new Import { Module = module, Name = name, Kind = ExternKind.Table, Table = ReadTableType(ref r) },
            2 => new Import { Module = module, Name = name, Kind = ExternKind.Memory, Memory = new MemoryType(ReadLimits(ref r)) },
            3 => new Import { Module = module, Name = name, Kind = ExternKind.Global, Global = ReadGlobalType(ref r) },
            _ => throw new MalformedModuleException("malformed import kind", offset),
        };
    }

    /// <summary>Decodes instructions up to the matching end; the validator judges whether they are constant.</summary>
    internal static ConstantExpression ReadConstantExpression(ref WasmReader r)
    {
        var instructions = new List<ConstantInstruction>(1);
        while (true)
        {
            var offset = r.Offset;
            var opcode = r.ReadByte();
            switch (opcode)
            {
                case Opcodes.End:
                    return new ConstantExpression([.. instructions]);
                case Opcodes.I32Const:
                    instructions.Add(new ConstantInstruction(opcode, (uint)r.ReadVarI32(), 0));
                    break;
                case Opcodes.I64Const:
                    instructions.Add(new ConstantInstruction(opcode, (ulong)r.ReadVarI64(), 0));
                    break;
                case Opcodes.F32Const:
                    instructions.Add(new ConstantInstruction(opcode, r.ReadF32Bits(), 0));
                    break;
                case Opcodes.F64Const:
                    instructions.Add(new ConstantInstruction(opcode, r.ReadF64Bits(), 0));
                    break;
                case Opcodes.RefNull:
                    instructions.Add(new ConstantInstruction(opcode, (ulong)ReadRefType(ref r), 0));
                    break;
                case Opcodes.RefFunc or Opcodes.GlobalGet or Opcodes.LocalGet or Opcodes.LocalSet or Opcodes.LocalTee
                    or Opcodes.GlobalSet or Opcodes.Call or Opcodes.Br or Opcodes.BrIf:
                    instructions.Add(new ConstantInstruction(opcode, 0, r.ReadVarU32()));
                    break;
                case Opcodes.PrefixSimd:
                    throw new UnsupportedFeatureException("SIMD", offset);
                case >= Opcodes.I32Eqz and <= Opcodes.I64Extend32S:
                case Opcodes.Nop or Opcodes.Unreachable or Opcodes.Drop or Opcodes.Select or Opcodes.RefIsNull:
                    instructions.Add(new ConstantInstruction(opcode, 0, 0));
                    break;
                default:
                    throw LaterProposals.IllegalOpcode(opcode, offset);
            }
        }
    }

    private static uint[] ReadFunctionIndices(ref WasmReader r) =>
        ReadVector(ref r, static (ref WasmReader r) => r.ReadVarU32());

    private static ElementSegment ReadElement(ref WasmReader r)
    {
        var offset = r.Offset;
        var flags = r.ReadVarU32();
        if (flags > 7) throw new MalformedModuleException("malformed elements segment kind", offset);
        var passiveOrDeclarative = (flags & 1) != 0;
        var explicitTable = (flags & 2) != 0;
        var usesExpressions = (flags & 4) != 0;
        var mode = passiveOrDeclarative ? (explicitTable ? SegmentMode.Declarative : SegmentMode.Passive) : SegmentMode.Active;
        uint table = 0;
        ConstantExpression? segmentOffset = null;
        if (mode == SegmentMode.Active)
        {
            if (explicitTable) table = r.ReadVarU32();
            segmentOffset = ReadConstantExpression(ref r);
        }
        var type = ValType.FuncRef;
        if (passiveOrDeclarative || explicitTable)
        {
            if (usesExpressions)
            {
                type = ReadRefType(ref r);
            }
            else
            {
                var kindOffset = r.Offset;
                if (r.ReadByte() != 0x00) throw new MalformedModuleException("malformed element kind", kindOffset);
            }
        }
        ConstantExpression[] items;
        if (usesExpressions)
        {
            items = ReadVector(ref r, static (ref WasmReader r) => ReadConstantExpression(ref r));
        }
        else
        {
            var indices = ReadFunctionIndices(ref r);
            items = new ConstantExpression[indices.Length];
            for (var i = 0; i < indices.Length; i++) items[i] = ConstantExpression.RefFunc(indices[i]);
        }
        return new ElementSegment { Mode = mode, Type = type, TableIndex = table, Offset = segmentOffset, Items = items };
    }

    private static FunctionBody ReadBody(ref WasmReader r, ReadOnlyMemory<byte> bytes, int sectionStart)
    {
        var size = r.ReadVarU32();
        if (size > r.Remaining) throw r.Error("unexpected end of section or function");
        var bodyStart = r.Position;
        var end = bodyStart + (int)size;
        var body = new WasmReader(bytes.Span.Slice(sectionStart + bodyStart, (int)size), r.Offset);
        var groupCount = body.ReadVarU32();
        if (groupCount > body.Remaining) throw body.Error("unexpected end");
        var groups = new LocalGroup[groupCount];
        ulong total = 0;
        for (var i = 0; i < groupCount; i++)
        {
            var count = body.ReadVarU32();
            total += count;
            if (total > MaxLocals) throw body.Error("too many locals");
            groups[i] = new LocalGroup(count, ReadValType(ref body));
        }
        var codeStart = sectionStart + bodyStart + body.Position;
        var codeLength = (int)size - body.Position;
        if (codeLength == 0 || bytes.Span[codeStart + codeLength - 1] != Opcodes.End)
            throw new MalformedModuleException(codeLength == 0 ? "unexpected end of section or function" : "END opcode expected", codeStart + codeLength);
        r.Position = end;
        return new FunctionBody
        {
            Locals = groups,
            LocalCount = (int)total,
            Code = bytes.Slice(codeStart, codeLength),
            CodeOffset = codeStart,
        };
    }

    private static DataSegment ReadData(ref WasmReader r, ReadOnlyMemory<byte> bytes, int sectionStart)
    {
        var offset = r.Offset;
        var flags = r.ReadVarU32();
        SegmentMode mode;
        uint memory = 0;
        ConstantExpression? segmentOffset = null;
        switch (flags)
        {
            case 0:
                mode = SegmentMode.Active;
                segmentOffset = ReadConstantExpression(ref r);
                break;
            case 1:
                mode = SegmentMode.Passive;
                break;
            case 2:
                mode = SegmentMode.Active;
                memory = r.ReadVarU32();
                segmentOffset = ReadConstantExpression(ref r);
                break;
            default:
                throw new MalformedModuleException("malformed data segment kind", offset);
        }
        var length = r.ReadVarU32();
        if (length > r.Remaining) throw r.Error("unexpected end of section or function");
        var start = sectionStart + r.Position;
        r.Position += (int)length;
        return new DataSegment { Mode = mode, MemoryIndex = memory, Offset = segmentOffset, Bytes = bytes.Slice(start, (int)length) };
    }

    private sealed class Builder
    {
        public FuncType[] Types = [];
        public Import[] Imports = [];
        public uint[] FunctionTypes = [];
        public TableType[] Tables = [];
        public MemoryType[] Memories = [];
        public Global[] Globals = [];
        public Export[] Exports = [];
        public uint? Start;
        public ElementSegment[] Elements = [];
        public uint? DataCount;
        public FunctionBody[] Codes = [];
        public DataSegment[] Data = [];
        public readonly List<CustomSection> Custom = [];

        public Module Build(ReadOnlyMemory<byte> bytes)
        {
            int functions = 0, tables = 0, memories = 0, globals = 0;
            foreach (var import in Imports)
            {
                switch (import.Kind)
                {
                    case ExternKind.Func: functions++; break;
                    case ExternKind.Table: tables++; break;
                    case ExternKind.Memory: memories++; break;
                    default: globals++; break;
                }
            }
            return new Module
            {
                Bytes = bytes,
                Types = Types,
                Imports = Imports,
                FunctionTypeIndices = FunctionTypes,
                Tables = Tables,
                Memories = Memories,
                Globals = Globals,
                Exports = Exports,
                StartFunction = Start,
                Elements = Elements,
                DataCount = DataCount,
                Codes = Codes,
                Data = Data,
                CustomSections = [.. Custom],
                FunctionNames = NameSection.ReadFunctionNames(Custom),
                ImportedFunctionCount = functions,
                ImportedTableCount = tables,
                ImportedMemoryCount = memories,
                ImportedGlobalCount = globals,
            };
        }
    }
}
