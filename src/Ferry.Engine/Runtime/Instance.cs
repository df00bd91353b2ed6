using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>A module instantiated in a store: its index spaces resolved to store objects.</summary>
public sealed class Instance
{
    internal Instance(Store store, Module module)
    {
        Store = store;
        Module = module;
        Functions = new FunctionInstance[module.FunctionCount];
        Tables = new TableInstance[module.TableCount];
        Globals = new GlobalInstance[module.GlobalCount];
        TypeIds = new int[module.Types.Length];
        for (var i = 0; i < TypeIds.Length; i++) TypeIds[i] = store.InternType(module.Types[i]);
        ElementSegments = new ulong[module.Elements.Length][];
        DataSegments = new ReadOnlyMemory<byte>[module.Data.Length];
    }

    public Store Store { get; }
    public Module Module { get; }
    internal FunctionInstance[] Functions { get; }
    internal TableInstance[] Tables { get; }
    internal GlobalInstance[] Globals { get; }
    /// <summary>Memory 0, if the module has or imports one.</summary>
    public LinearMemory? Memory { get; internal set; }
    internal int[] TypeIds { get; }
    /// <summary>Element segments as references; a dropped segment is empty.</summary>
    internal ulong[][] ElementSegments { get; }
    /// <summary>Data segments; a dropped segment is empty.</summary>
    internal ReadOnlyMemory<byte>[] DataSegments { get; }

    private readonly Dictionary<string, Extern> _exports = new(StringComparer.Ordinal);
    public IReadOnlyDictionary<string, Extern> Exports => _exports;

    internal void AddExport(string name, Extern value) => _exports.Add(name, value);

    public bool TryGetExport(string name, out Extern value) => _exports.TryGetValue(name, out value);

    public FunctionInstance GetFunction(string name) =>
        Get(name, ExternKind.Func).AsFunction!;

    public LinearMemory GetMemory(string name) => Get(name, ExternKind.Memory).AsMemory!;
    public GlobalInstance GetGlobal(string name) => Get(name, ExternKind.Global).AsGlobal!;
    public TableInstance GetTable(string name) => Get(name, ExternKind.Table).AsTable!;

    /// <summary>The instance's function at a module index (imports first).</summary>
    public FunctionInstance Function(uint index) => Functions[index];
    public GlobalInstance Global(uint index) => Globals[index];
    public TableInstance Table(uint index) => Tables[index];

    /// <summary>
    /// The module index of the function at store <paramref name="address"/> (the lowest, for a function imported twice),
    /// or -1 if it is none of this instance's. Snapshots write function references so; clang's 133,427 functions made a
    /// dictionary built per capture cost 4-16 ms of the migration's downtime.
    /// </summary>
    internal int FunctionIndexOf(int address)
    {
        var index = Volatile.Read(ref _functionIndex) ?? BuildFunctionIndex();
        var at = address - index.LowestAddress;
        return (uint)at < (uint)index.ByAddress.Length ? index.ByAddress[at] : -1;
    }

    // Built at the first use, once instantiation has filled Functions (which then never change).
    private FunctionIndex? _functionIndex;

    private sealed record FunctionIndex(int LowestAddress, int[] ByAddress);

    private FunctionIndex BuildFunctionIndex()
    {
        var lowest = int.MaxValue;
        var highest = -1;
        foreach (var function in Functions)
        {
            lowest = Math.Min(lowest, function.Address);
            highest = Math.Max(highest, function.Address);
        }
        // Store addresses are dense (one list per store), so the span is at most the store's function count.
        var byAddress = new int[highest < lowest ? 0 : highest - lowest + 1];
        Array.Fill(byAddress, -1);
        for (var i = Functions.Length - 1; i >= 0; i--) byAddress[Functions[i].Address - lowest] = i;
        var index = new FunctionIndex(lowest, byAddress);
        Volatile.Write(ref _functionIndex, index);
        return index;
    }

    private Extern Get(string name, ExternKind kind)
    {
        if (!_exports.TryGetValue(name, out var value)) throw new KeyNotFoundException($"the module exports nothing named '{name}'");
        if (value.Kind != kind) throw new InvalidOperationException($"export '{name}' is a {value.Kind}, not a {kind}");
        return value;
    }
}
