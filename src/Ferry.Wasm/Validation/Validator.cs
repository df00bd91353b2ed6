using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Validation;

/// <summary>
/// The spec's validation algorithm: module-level rules, constant expressions, and every function body checked
/// with the appendix's operand and control stacks. Malformed code bytes found on the way are reported as
/// malformed, the rest as invalid, both in the spec's wording.
/// </summary>
public static class Validator
{
    public static void Validate(Module module)
    {
        var context = new ModuleContext(module);
        context.ValidateModule();
        var validator = new FunctionValidator(context);
        for (var i = 0; i < module.Codes.Length; i++)
        {
            validator.Validate((uint)(module.ImportedFunctionCount + i), module.Codes[i]);
        }
    }
}

/// <summary>The module's index spaces, as validation sees them.</summary>
internal sealed class ModuleContext
{
    public readonly Module Module;
    public readonly FuncType[] Functions;
    public readonly TableType[] Tables;
    public readonly MemoryType[] Memories;
    public readonly GlobalType[] Globals;
    /// <summary>Functions that may be referenced by ref.func in code (C.refs).</summary>
    public readonly HashSet<uint> DeclaredReferences = [];

    public ModuleContext(Module module)
    {
        Module = module;
        var functions = new List<FuncType>();
        var tables = new List<TableType>();
        var memories = new List<MemoryType>();
        var globals = new List<GlobalType>();
        foreach (var import in module.Imports)
        {
            switch (import.Kind)
            {
                case ExternKind.Func:
                    functions.Add(import.TypeIndex < module.Types.Length ? module.Types[import.TypeIndex] : throw Invalid("unknown type", $"import {import}"));
                    break;
                case ExternKind.Table: tables.Add(import.Table); break;
                case ExternKind.Memory: memories.Add(import.Memory); break;
                default: globals.Add(import.Global); break;
            }
        }
        for (var i = 0; i < module.FunctionTypeIndices.Length; i++)
        {
            var index = module.FunctionTypeIndices[i];
            functions.Add(index < module.Types.Length ? module.Types[index] : throw Invalid("unknown type", $"function {functions.Count}"));
        }
        tables.AddRange(module.Tables);
        memories.AddRange(module.Memories);
        foreach (var global in module.Globals) globals.Add(global.Type);
        Functions = [.. functions];
        Tables = [.. tables];
        Memories = [.. memories];
        Globals = [.. globals];
    }

    public static InvalidModuleException Invalid(string reason, string where) => new(reason, where);

    public void ValidateModule()
    {
        var module = Module;
        foreach (var table in Tables) ValidateLimits(table.Limits, "table");
        foreach (var memory in Memories) ValidateMemoryLimits(memory.Limits);
        if (Memories.Length > 1) throw Invalid("multiple memories", "memory section");

        // C.refs: every function index named outside function bodies.
        foreach (var global in module.Globals) CollectReferences(global.Init);
        foreach (var element in module.Elements)
        {
            foreach (var item in element.Items) CollectReferences(item);
        }
        foreach (var export in module.Exports)
        {
            if (export.Kind == ExternKind.Func) DeclaredReferences.Add(export.Index);
        }

        var importedGlobals = module.ImportedGlobalCount;
        for (var i = 0; i < module.Globals.Length; i++)
        {
            var global = module.Globals[i];
            ValidateConstant(global.Init, global.Type.Type, importedGlobals, $"global {importedGlobals + i}");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var export in module.Exports)
        {
            if (!names.Add(export.Name)) throw Invalid("duplicate export name", $"export '{export.Name}'");
            var where = $"export '{export.Name}'";
            switch (export.Kind)
            {
                case ExternKind.Func when export.Index >= Functions.Length: throw Invalid("unknown function", where);
                case ExternKind.Table when export.Index >= Tables.Length: throw Invalid("unknown table", where);
                case ExternKind.Memory when export.Index >= Memories.Length: throw Invalid("unknown memory", where);
                case ExternKind.Global when export.Index >= Globals.Length: throw Invalid("unknown global", where);
            }
        }

        if (module.StartFunction is { } start)
        {
            if (start >= Functions.Length) throw Invalid("unknown function", "start section");
            var type = Functions[start];
            if (type.Parameters.Length != 0 || type.Results.Length != 0) throw Invalid("start function", "start section");
        }

        for (var i = 0; i < module.Elements.Length; i++)
        {
            var element = module.Elements[i];
            var where = $"element segment {i}";
            if (element.Mode == SegmentMode.Active)
            {
                if (element.TableIndex >= Tables.Length) throw Invalid("unknown table", where);
                if (Tables[element.TableIndex].ElementType != element.Type) throw Invalid("type mismatch", where);
                ValidateConstant(element.Offset!, ValType.I32, importedGlobals, where);
            }
            foreach (var item in element.Items) ValidateConstant(item, element.Type, importedGlobals, where);
        }

        for (var i = 0; i < module.Data.Length; i++)
        {
            var data = module.Data[i];
            var where = $"data segment {i}";
            if (data.Mode != SegmentMode.Active) continue;
            if (data.MemoryIndex >= Memories.Length) throw Invalid($"unknown memory {data.MemoryIndex}", where);
            ValidateConstant(data.Offset!, ValType.I32, importedGlobals, where);
        }
    }

    private void CollectReferences(ConstantExpression expression)
    {
        foreach (var instruction in expression.Instructions)
        {
            if (instruction.Opcode == Opcodes.RefFunc) DeclaredReferences.Add(instruction.Index);
        }
    }

    private static void ValidateLimits(Limits limits, string what)
    {
        if (limits.Max is { } max && limits.Min > max) throw Invalid("size minimum must not be greater than maximum", what);
    }

    private static void ValidateMemoryLimits(Limits limits)
    {
        if (limits.Min > MemoryType.MaxPages || limits.Max > MemoryType.MaxPages)
            throw Invalid("memory size must be at most 65536 pages (4GiB)", "memory");
        ValidateLimits(limits, "memory");
    }

    /// <summary>A constant expression producing exactly one <paramref name="expected"/>; global.get may name only the first <paramref name="visibleGlobals"/> globals.</summary>
    private void ValidateConstant(ConstantExpression expression, ValType expected, int visibleGlobals, string where)
    {
        var depth = 0;
        var type = ValType.I32;
        foreach (var instruction in expression.Instructions)
        {
            switch (instruction.Opcode)
            {
                case Opcodes.I32Const: type = ValType.I32; break;
                case Opcodes.I64Const: type = ValType.I64; break;
                case Opcodes.F32Const: type = ValType.F32; break;
                case Opcodes.F64Const: type = ValType.F64; break;
                case Opcodes.RefNull: type = (ValType)instruction.Bits; break;
                case Opcodes.RefFunc:
                    if (instruction.Index >= Functions.Length) throw Invalid("unknown function", where);
                    type = ValType.FuncRef;
                    break;
                case Opcodes.GlobalGet:
                    if (instruction.Index >= visibleGlobals) throw Invalid("unknown global", where);
                    if (Globals[instruction.Index].Mutable) throw Invalid("constant expression required", where);
                    type = Globals[instruction.Index].Type;
                    break;
                default:
                    throw Invalid("constant expression required", where);
            }
            depth++;
        }
        if (depth != 1 || type != expected) throw Invalid("type mismatch", where);
    }
}
