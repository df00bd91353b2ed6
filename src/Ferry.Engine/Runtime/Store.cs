using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>
/// All runtime objects that instances share: functions, tables, memories, globals. References between
/// them are store addresses, so a store's whole state is data.
/// </summary>
public sealed class Store
{
    private readonly List<FunctionInstance> _functions = [];
    private readonly Dictionary<FuncType, int> _typeIds = [];

    public Store(StoreOptions? options = null) => Options = options ?? new StoreOptions();

    public StoreOptions Options { get; }

    internal int InternType(FuncType type)
    {
        if (!_typeIds.TryGetValue(type, out var id))
        {
            id = _typeIds.Count;
            _typeIds.Add(type, id);
        }
        return id;
    }

    /// <summary>Adds every function <paramref name="instance"/> defines, in index order after its imports.</summary>
    internal void AddWasmFunctions(Instance instance)
    {
        var module = instance.Module;
        _functions.EnsureCapacity(_functions.Count + module.FunctionTypeIndices.Length);
        for (var i = 0; i < module.FunctionTypeIndices.Length; i++)
        {
            var typeIndex = module.FunctionTypeIndices[i];
            var index = (uint)(module.ImportedFunctionCount + i);
            // The instance interned each of its module's types once: a lookup per function cost a third of instantiating LLVM's 130,000.
            var function = new WasmFunction(module.Types[typeIndex], instance.TypeIds[typeIndex], _functions.Count, instance, index);
            _functions.Add(function);
            instance.Functions[index] = function;
        }
    }

    public HostFunction CreateHostFunction(FuncType type, HostFunctionCallback callback, string? name = null)
    {
        var function = new HostFunction(type, InternType(type), _functions.Count, callback, name);
        _functions.Add(function);
        return function;
    }

    public TableInstance CreateTable(TableType type, Value? initial = null)
    {
        var init = initial ?? Value.Null(type.ElementType);
        if (init.Type != type.ElementType) throw new ArgumentException($"a {type.ElementType.Name()} table cannot hold {init.Type.Name()}");
        return new TableInstance(type, init.Bits, Options.MaxTableElements);
    }

    public LinearMemory CreateMemory(MemoryType type) => new(type, Options.MaxMemoryPages);

    public GlobalInstance CreateGlobal(GlobalType type, Value value)
    {
        if (value.Type != type.Type) throw new ArgumentException($"a {type.Type.Name()} global cannot hold {value.Type.Name()}");
        return new GlobalInstance(type, value.Bits);
    }

    /// <summary>The function a funcref value names, or null for a null reference.</summary>
    public FunctionInstance? Function(Value reference)
    {
        if (reference.Type != ValType.FuncRef) throw new ArgumentException("not a funcref");
        return reference.Bits == 0 ? null : _functions[(int)(reference.Bits - 1)];
    }

    internal FunctionInstance FunctionAt(int address) => _functions[address];

    /// <summary>A funcref value naming <paramref name="function"/>.</summary>
    public static Value Reference(FunctionInstance function) => new(ValType.FuncRef, (ulong)function.Address + 1);

    /// <summary>Calls a function to completion. Throws <see cref="TrapException"/> on a trap.</summary>
    public Value[] Invoke(FunctionInstance function, params Value[] arguments)
    {
        var execution = Start(function, arguments);
        var status = execution.Run();
        return status switch
        {
            ExecutionStatus.Finished => execution.Results,
            ExecutionStatus.Trapped => throw execution.Trap!,
            _ => throw new InvalidOperationException($"execution stopped with status {status}"),
        };
    }

    /// <summary>Prepares a resumable call; nothing runs until <see cref="Execution.Run"/>.</summary>
    public Execution Start(FunctionInstance function, params Value[] arguments) => new(this, function, arguments);
}
