using Ferry.Engine.Interpreter;
using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>A function in a store: defined by a module instance or by the host.</summary>
public abstract class FunctionInstance
{
    private protected FunctionInstance(FuncType type, int typeId, int address)
    {
        Type = type;
        TypeId = typeId;
        Address = address;
    }

    public FuncType Type { get; }
    /// <summary>The store's canonical id of <see cref="Type"/>, compared by call_indirect.</summary>
    internal int TypeId { get; }
    /// <summary>Index in the store; funcref values encode it plus one.</summary>
    internal int Address { get; }
    public abstract string? Name { get; }
}

/// <summary>
/// A host function. It reads its arguments and writes its results in slot encoding; the two spans never
/// overlap. It traps by throwing <see cref="TrapException"/>.
/// </summary>
public delegate void HostFunctionCallback(HostCallContext context, ReadOnlySpan<ulong> arguments, Span<ulong> results);

public sealed class HostFunction : FunctionInstance
{
    internal HostFunction(FuncType type, int typeId, int address, HostFunctionCallback callback, string? name)
        : base(type, typeId, address)
    {
        Callback = callback;
        Name = name;
    }

    internal HostFunctionCallback Callback { get; private set; }
    public override string? Name { get; }

    /// <summary>Serves the function with <paramref name="callback"/> from now on (a stand-in of <see cref="Linker.PrepareForRestore"/> getting its host).</summary>
    internal void Bind(HostFunctionCallback callback) => Callback = callback;
}

/// <summary>A function defined by a module instance, translated to internal code on first call.</summary>
public sealed class WasmFunction : FunctionInstance
{
    internal WasmFunction(FuncType type, int typeId, int address, Instance instance, uint index)
        : base(type, typeId, address)
    {
        Instance = instance;
        Index = index;
    }

    public Instance Instance { get; }
    /// <summary>Index in the module's function index space.</summary>
    public uint Index { get; }
    public override string? Name => Instance.Module.FunctionName(Index);

    private CompiledFunction? _compiled;

    internal CompiledFunction Compiled => _compiled ?? TranslateOnce();

    /// <summary>Whether the function's internal code exists yet (it is made at its first call, restore or <see cref="Translate"/>).</summary>
    public bool IsTranslated => _compiled is not null;

    /// <summary>
    /// Translates the function now rather than at its first call, from any thread: a migration's target translates the
    /// functions on the incoming process's call stack while its memory is still on the way.
    /// </summary>
    public void Translate() => _ = Compiled;

    private CompiledFunction TranslateOnce()
    {
        // One translation per function even when two threads ask at once: a frame's code is found by its identity, and
        // the second asker waits for the half-done translation instead of starting another.
        lock (this)
        {
            return _compiled ??= Translator.Compile(this);
        }
    }
}
