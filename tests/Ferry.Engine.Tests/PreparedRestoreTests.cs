using Ferry.Tests.Shared;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>
/// An instance prepared for a restore before its host exists: its imported functions are stand-ins that trap until the
/// host's linker binds them, with the checks instantiation makes.
/// </summary>
public sealed class PreparedRestoreTests
{
    private static readonly FuncType Unary = new([ValType.I32], [ValType.I32]);

    private static Module Calling() => Module.Load(Wat.ToWasm("""
        (module
          (import "host" "twice" (func $twice (param i32) (result i32)))
          (memory 1)
          (func (export "main") (param i32) (result i32) (i32.add (call $twice (local.get 0)) (i32.const 1))))
        """));

    [Fact]
    public void A_prepared_instance_traps_in_an_unbound_import_and_runs_once_the_host_binds_it()
    {
        var module = Calling();
        var store = new Store();
        var memory = store.CreateMemory(module.Memories[0]);
        var instance = Linker.PrepareForRestore(store, module, memory)!;
        Assert.Same(memory, instance.Memory);

        var trap = Assert.Throws<TrapException>(() => store.Invoke(instance.GetFunction("main"), Value.I32(20)));
        Assert.Contains("host.twice is not bound to a host yet", trap.Message);

        new Linker().DefineFunction("host", "twice", Unary, (_, arguments, results) => results[0] = (uint)arguments[0] * 2).BindImports(instance);
        Assert.Equal([Value.I32(41)], store.Invoke(instance.GetFunction("main"), Value.I32(20)));
    }

    [Fact]
    public void Binding_a_prepared_instance_refuses_a_missing_or_mistyped_host_function()
    {
        var module = Calling();
        var store = new Store();
        var instance = Linker.PrepareForRestore(store, module, store.CreateMemory(module.Memories[0]))!;

        var missing = Assert.Throws<LinkException>(() => new Linker().BindImports(instance));
        Assert.Equal("unknown import: host.twice", missing.Message);
        var mistyped = Assert.Throws<LinkException>(() =>
            new Linker().DefineFunction("host", "twice", new FuncType([ValType.I64], [ValType.I32]), (_, _, _) => { }).BindImports(instance));
        Assert.Equal("incompatible import type: host.twice", mistyped.Message);
    }

    [Fact]
    public void A_module_that_imports_anything_but_functions_is_not_prepared()
    {
        var module = Module.Load(Wat.ToWasm("""(module (import "host" "memory" (memory 1)) (func (export "main")))"""));
        Assert.Null(Linker.PrepareForRestore(new Store(), module, null));
    }
}
