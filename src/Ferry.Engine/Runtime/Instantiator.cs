using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>The spec's instantiation algorithm, with its order of effects.</summary>
internal static class Instantiator
{
    public static Instance Instantiate(Store store, Module module, Func<Import, Extern?> resolve, bool runStart, LinearMemory? memory = null)
    {
        using var pause = module.FunctionTypeIndices.Length >= ManyFunctions ? CollectionPause.For(AllocationEstimate(module)) : default;
        var instance = new Instance(store, module);
        ResolveImports(module, instance, resolve);

        store.AddWasmFunctions(instance);
        for (var i = 0; i < module.Tables.Length; i++)
        {
            instance.Tables[module.ImportedTableCount + i] = store.CreateTable(module.Tables[i]);
        }
        if (module.Memories.Length > 0) instance.Memory = memory ?? store.CreateMemory(module.Memories[0]);
        for (var i = 0; i < module.Globals.Length; i++)
        {
            var global = module.Globals[i];
            instance.Globals[module.ImportedGlobalCount + i] = new GlobalInstance(global.Type, Evaluate(instance, global.Init));
        }
        for (var i = 0; i < module.Elements.Length; i++)
        {
            var items = module.Elements[i].Items;
            var refs = new ulong[items.Length];
            for (var j = 0; j < items.Length; j++) refs[j] = Evaluate(instance, items[j]);
            instance.ElementSegments[i] = refs;
        }
        for (var i = 0; i < module.Data.Length; i++) instance.DataSegments[i] = module.Data[i].Bytes;
        foreach (var export in module.Exports) instance.AddExport(export.Name, ExternFor(instance, export));

        for (var i = 0; i < module.Elements.Length; i++)
        {
            var segment = module.Elements[i];
            if (segment.Mode == SegmentMode.Active)
            {
                var offset = (uint)Evaluate(instance, segment.Offset!);
                var table = instance.Tables[segment.TableIndex];
                var refs = instance.ElementSegments[i];
                if ((ulong)offset + (ulong)refs.Length > table.Size) throw new TrapException(TrapKind.OutOfBoundsTableAccess);
                refs.CopyTo(table.Elements, offset);
            }
            if (segment.Mode != SegmentMode.Passive) instance.ElementSegments[i] = [];
        }
        for (var i = 0; i < module.Data.Length; i++)
        {
            var segment = module.Data[i];
            if (segment.Mode != SegmentMode.Active) continue;
            instance.DataSegments[i] = ReadOnlyMemory<byte>.Empty;
            // A memory handed in already holds the process's contents (a restore into memory received ahead of it).
            if (memory is not null) continue;
            var offset = (uint)Evaluate(instance, segment.Offset!);
            var target = instance.Memory!;
            if ((ulong)offset + (ulong)segment.Bytes.Length > target.Size) throw new TrapException(TrapKind.OutOfBoundsMemoryAccess);
            segment.Bytes.Span.CopyTo(target.Slice(offset, segment.Bytes.Length));
        }

        if (runStart && module.StartFunction is { } start) store.Invoke(instance.Functions[start]);
        return instance;
    }

    /// <summary>Defined functions from which instantiation runs without garbage collections (<see cref="CollectionPause"/>).</summary>
    private const int ManyFunctions = 10_000;

    /// <summary>Bytes instantiating <paramref name="module"/> allocates, about: a function object and two references to it per function, the element segments' references, and slack.</summary>
    private static long AllocationEstimate(Module module)
    {
        long elementItems = 0;
        foreach (var segment in module.Elements) elementItems += segment.Items.Length;
        return module.FunctionTypeIndices.Length * 96L + elementItems * 8 + (4L << 20);
    }

    private static void ResolveImports(Module module, Instance instance, Func<Import, Extern?> resolve)
    {
        int functions = 0, tables = 0, globals = 0;
        foreach (var import in module.Imports)
        {
            var name = $"{import.Module}.{import.Name}";
            var value = resolve(import) ?? throw new LinkException("unknown import", name);
            if (value.Kind != import.Kind) throw new LinkException("incompatible import type", name);
            switch (import.Kind)
            {
                case ExternKind.Func:
                    var function = value.AsFunction!;
                    if (!function.Type.Equals(module.Types[import.TypeIndex])) throw new LinkException("incompatible import type", name);
                    instance.Functions[functions++] = function;
                    break;
                case ExternKind.Table:
                    var table = value.AsTable!;
                    if (table.Type.ElementType != import.Table.ElementType || !Matches(table.Type.Limits, import.Table.Limits))
                        throw new LinkException("incompatible import type", name);
                    instance.Tables[tables++] = table;
                    break;
                case ExternKind.Memory:
                    var memory = value.AsMemory!;
                    if (!Matches(memory.Type.Limits, import.Memory.Limits))
                        throw new LinkException("incompatible import type", name);
                    instance.Memory = memory;
                    break;
                case ExternKind.Global:
                    var global = value.AsGlobal!;
                    if (global.Type != import.Global) throw new LinkException("incompatible import type", name);
                    instance.Globals[globals++] = global;
                    break;
            }
        }
    }

    /// <summary>Import subtyping of limits: at least the minimum, and within the maximum if one is asked for.</summary>
    private static bool Matches(Limits actual, Limits expected) =>
        actual.Min >= expected.Min && (expected.Max is not { } max || (actual.Max is { } actualMax && actualMax <= max));

    private static Extern ExternFor(Instance instance, Export export) => export.Kind switch
    {
        ExternKind.Func => Extern.From(instance.Functions[export.Index]),
        ExternKind.Table => Extern.From(instance.Tables[export.Index]),
        ExternKind.Memory => Extern.From(instance.Memory!),
        _ => Extern.From(instance.Globals[export.Index]),
    };

    /// <summary>Evaluates a validated constant expression to slot encoding.</summary>
    internal static ulong Evaluate(Instance instance, ConstantExpression expression)
    {
        var instruction = expression.Instructions[^1];
        return instruction.Opcode switch
        {
            Opcodes.I32Const => (uint)instruction.Bits,
            Opcodes.GlobalGet => instance.Globals[instruction.Index].Bits,
            Opcodes.RefFunc => (ulong)instance.Functions[instruction.Index].Address + 1,
            Opcodes.RefNull => 0,
            _ => instruction.Bits,
        };
    }
}
