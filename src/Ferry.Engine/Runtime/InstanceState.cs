using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>
/// The mutable state of an instance apart from memory: global values, table contents and which segments were
/// dropped. Function references are stored as the module's function index plus one (0 is null), so the state
/// can be restored into a fresh instance of the same module in any store. A table nothing wrote since instantiation
/// is null: a fresh instance of the module already holds it (clang's 37,270 entries took 1-2 ms to capture and to restore).
/// </summary>
public sealed class InstanceState
{
    public required ulong[] Globals { get; init; }
    public required ulong[]?[] Tables { get; init; }
    public required bool[] DroppedElements { get; init; }
    public required bool[] DroppedData { get; init; }

    public static InstanceState Capture(Instance instance)
    {
        ulong Portable(ValType type, ulong bits)
        {
            if (type != ValType.FuncRef || bits == 0) return bits;
            var index = instance.FunctionIndexOf((int)(bits - 1));
            return index >= 0
                ? (ulong)index + 1
                : throw new InvalidOperationException("a funcref names a function outside the instance's index space");
        }

        var globals = new ulong[instance.Globals.Length];
        for (var i = 0; i < globals.Length; i++) globals[i] = Portable(instance.Globals[i].Type.Type, instance.Globals[i].Bits);
        var tables = new ulong[]?[instance.Tables.Length];
        for (var t = 0; t < tables.Length; t++)
        {
            var table = instance.Tables[t];
            if (!table.Written) continue;
            var elements = new ulong[table.Elements.Length];
            for (var i = 0; i < elements.Length; i++) elements[i] = Portable(table.Type.ElementType, table.Elements[i]);
            tables[t] = elements;
        }
        var module = instance.Module;
        var droppedElements = new bool[module.Elements.Length];
        for (var i = 0; i < droppedElements.Length; i++) droppedElements[i] = instance.ElementSegments[i].Length == 0 && module.Elements[i].Items.Length > 0;
        var droppedData = new bool[module.Data.Length];
        for (var i = 0; i < droppedData.Length; i++) droppedData[i] = instance.DataSegments[i].IsEmpty && !module.Data[i].Bytes.IsEmpty;
        return new InstanceState { Globals = globals, Tables = tables, DroppedElements = droppedElements, DroppedData = droppedData };
    }

    /// <summary>Overwrites a freshly instantiated instance of the same module with this state.</summary>
    public void RestoreInto(Instance instance)
    {
        var module = instance.Module;
        if (Globals.Length != instance.Globals.Length || Tables.Length != instance.Tables.Length
            || DroppedElements.Length != module.Elements.Length || DroppedData.Length != module.Data.Length)
            throw new InvalidExecutionStateException("the instance state does not match the module's globals, tables and segments");
        ulong Local(ValType type, ulong bits)
        {
            if (type != ValType.FuncRef || bits == 0) return bits;
            return bits - 1 < (ulong)instance.Functions.Length
                ? (ulong)instance.Functions[bits - 1].Address + 1
                : throw new InvalidExecutionStateException($"a funcref names function {bits - 1}, which the module does not have");
        }

        for (var i = 0; i < Globals.Length; i++) instance.Globals[i].Bits = Local(instance.Globals[i].Type.Type, Globals[i]);
        for (var t = 0; t < Tables.Length; t++)
        {
            var table = instance.Tables[t];
            if (Tables[t] is not { } elements) continue;
            table.Written = true;
            if (elements.Length > table.Size && table.Grow((uint)(elements.Length - table.Size), 0) < 0)
                throw new InvalidExecutionStateException($"table {t} cannot grow to {elements.Length} elements");
            for (var i = 0; i < elements.Length; i++) table.Elements[i] = Local(table.Type.ElementType, elements[i]);
        }
        for (var i = 0; i < DroppedElements.Length; i++)
        {
            if (DroppedElements[i]) instance.ElementSegments[i] = [];
        }
        for (var i = 0; i < DroppedData.Length; i++)
        {
            if (DroppedData[i]) instance.DataSegments[i] = ReadOnlyMemory<byte>.Empty;
        }
    }
}
