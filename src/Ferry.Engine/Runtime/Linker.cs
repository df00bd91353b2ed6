using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>Names the host functions and exports that imports resolve to, and instantiates modules.</summary>
public sealed class Linker
{
    private readonly Dictionary<(string Module, string Name), object> _definitions = [];

    /// <summary>Defines (or replaces) an importable entity.</summary>
    public Linker Define(string module, string name, Extern value)
    {
        _definitions[(module, name)] = value;
        return this;
    }

    /// <summary>Defines a host function; it is created in each store that instantiates against it.</summary>
    public Linker DefineFunction(string module, string name, FuncType type, HostFunctionCallback callback)
    {
        _definitions[(module, name)] = new HostDefinition(type, callback, $"{module}.{name}");
        return this;
    }

    /// <summary>Makes every export of <paramref name="instance"/> importable under <paramref name="module"/>.</summary>
    public Linker DefineInstance(string module, Instance instance)
    {
        foreach (var (name, value) in instance.Exports) _definitions[(module, name)] = value;
        return this;
    }

    /// <summary>
    /// Instantiates per the spec: resolve imports (<see cref="LinkException"/>), allocate, initialise
    /// segments in order, run the start function (<see cref="TrapException"/>).
    /// </summary>
    public Instance Instantiate(Store store, Module module) => Instantiator.Instantiate(store, module, import => Resolve(store, import), runStart: true);

    /// <summary>
    /// Instantiates without running the start function: the shell into which a captured process is restored,
    /// whose start function already ran before the capture.
    /// </summary>
    public Instance InstantiateForRestore(Store store, Module module) => Instantiator.Instantiate(store, module, import => Resolve(store, import), runStart: false);

    /// <summary>
    /// Instantiates for a restore whose linear memory was received ahead of the rest (live migration): the module's
    /// memory is <paramref name="memory"/>, created by <see cref="Store.CreateMemory"/> for the module's memory type,
    /// and data segments are not copied into it.
    /// </summary>
    public Instance InstantiateForRestore(Store store, Module module, Memory.LinearMemory memory) =>
        Instantiator.Instantiate(store, module, import => Resolve(store, import), runStart: false, memory);

    /// <summary>
    /// Instantiates for a restore before the host that will serve its imports exists, as <see cref="InstantiateForRestore(Store, Module, Memory.LinearMemory?)"/>
    /// otherwise: a migration target prepares the instance when it admits the process, so that creating it (about 10 ms for
    /// a module of 130,000 functions) is not part of the downtime. Each imported function is a stand-in that traps until
    /// <see cref="BindImports"/>. Null if the module imports anything but functions, which cannot wait so.
    /// </summary>
    public static Instance? PrepareForRestore(Store store, Module module, Memory.LinearMemory? memory)
    {
        foreach (var import in module.Imports)
        {
            if (import.Kind != ExternKind.Func) return null;
        }
        return Instantiator.Instantiate(store, module, import =>
        {
            var name = $"{import.Module}.{import.Name}";
            return Extern.From(store.CreateHostFunction(module.Types[import.TypeIndex], (_, _, _) => throw new TrapException(TrapKind.HostError, $"{name} is not bound to a host yet"), name));
        }, runStart: false, memory);
    }

    /// <summary>
    /// Serves the imported functions of an instance from <see cref="PrepareForRestore"/> with this linker's host
    /// functions, checked as instantiation checks them (<see cref="LinkException"/>).
    /// </summary>
    public void BindImports(Instance instance)
    {
        var function = 0;
        foreach (var import in instance.Module.Imports)
        {
            var name = $"{import.Module}.{import.Name}";
            var standIn = instance.Functions[function++] as HostFunction ?? throw new InvalidOperationException("the instance was not prepared for a restore");
            if (!_definitions.TryGetValue((import.Module, import.Name), out var definition)) throw new LinkException("unknown import", name);
            if (definition is not HostDefinition host) throw new LinkException("an import bound after instantiation must be a host function", name);
            if (!host.Type.Equals(standIn.Type)) throw new LinkException("incompatible import type", name);
            standIn.Bind(host.Callback);
        }
    }

    private Extern? Resolve(Store store, Import import)
    {
        if (!_definitions.TryGetValue((import.Module, import.Name), out var definition)) return null;
        if (definition is Extern value) return value;
        var host = (HostDefinition)definition;
        if (!host.Created.TryGetValue(store, out var function))
        {
            function = store.CreateHostFunction(host.Type, host.Callback, host.Name);
            host.Created.Add(store, function);
        }
        return Extern.From(function);
    }

    private sealed record HostDefinition(FuncType Type, HostFunctionCallback Callback, string Name)
    {
        public System.Runtime.CompilerServices.ConditionalWeakTable<Store, HostFunction> Created { get; } = new();
    }
}
