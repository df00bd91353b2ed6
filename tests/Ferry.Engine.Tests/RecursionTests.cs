using Ferry.Tests.Shared;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

public sealed class RecursionTests
{
    private static (Store, Instance) Load()
    {
        var store = new Store();
        return (store, new Linker().Instantiate(store, Module.Load(Wat.Program("recursion"))));
    }

    [Fact]
    public void A_function_recursing_100000_deep_completes_with_default_limits()
    {
        var (store, instance) = Load();
        Assert.Equal(100_000, store.Invoke(instance.GetFunction("depth"), Value.I32(100_000))[0].AsI32());
    }

    [Fact]
    public void Mutual_and_indirect_recursion_100000_deep_complete()
    {
        var (store, instance) = Load();
        Assert.Equal(1, store.Invoke(instance.GetFunction("even"), Value.I32(100_000))[0].AsI32());
        Assert.Equal(100_000, store.Invoke(instance.GetFunction("depth_indirect"), Value.I32(100_000))[0].AsI32());
    }

    [Fact]
    public void Unbounded_recursion_traps_with_call_stack_exhausted_instead_of_overflowing_the_host()
    {
        var (store, instance) = Load();
        var trap = Assert.Throws<TrapException>(() => store.Invoke(instance.GetFunction("forever"), Value.I32(0)));
        Assert.Equal(TrapKind.CallStackExhausted, trap.Kind);
        Assert.StartsWith("call stack exhausted", trap.Message);
        Assert.Equal("forever", trap.FunctionName);
    }

    [Fact]
    public void The_call_depth_limit_is_configurable()
    {
        var store = new Store(new StoreOptions { MaxCallDepth = 1_000 });
        var instance = new Linker().Instantiate(store, Module.Load(Wat.Program("recursion")));
        Assert.Equal(998, store.Invoke(instance.GetFunction("depth"), Value.I32(998))[0].AsI32());
        Assert.Equal(TrapKind.CallStackExhausted,
            Assert.Throws<TrapException>(() => store.Invoke(instance.GetFunction("depth"), Value.I32(1_000))).Kind);
    }
}
