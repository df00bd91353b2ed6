using Ferry.Tests.Shared;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>The embedding API: host functions, linking instances, and what a trap reports.</summary>
public sealed class EmbeddingTests
{
    [Fact]
    public void Host_functions_receive_arguments_return_results_and_read_the_callers_memory()
    {
        var module = Module.Load(Wat.ToWasm("""
            (module
              (import "host" "add" (func $add (param i64 i32) (result i64 f64)))
              (import "host" "text" (func $text (param i32 i32)))
              (memory (export "memory") 1)
              (data (i32.const 8) "hello")
              (func (export "main") (result i64 f64)
                (call $text (i32.const 8) (i32.const 5))
                (call $add (i64.const 40) (i32.const 2))))
            """));
        string? seen = null;
        var linker = new Linker()
            .DefineFunction("host", "add", new FuncType([ValType.I64, ValType.I32], [ValType.I64, ValType.F64]), (_, arguments, results) =>
            {
                results[0] = arguments[0] + arguments[1];
                results[1] = BitConverter.DoubleToUInt64Bits(0.5);
            })
            .DefineFunction("host", "text", new FuncType([ValType.I32, ValType.I32], []), (context, arguments, _) =>
                seen = System.Text.Encoding.ASCII.GetString(context.Memory!.Slice(arguments[0], (int)arguments[1])));
        var store = new Store();
        var results = store.Invoke(linker.Instantiate(store, module).GetFunction("main"));
        Assert.Equal("hello", seen);
        Assert.Equal([Value.I64(42), Value.F64(0.5)], results);
    }

    [Fact]
    public void Instances_share_imported_globals_tables_and_memories()
    {
        var provider = Module.Load(Wat.ToWasm("""
            (module
              (global (export "g") (mut i32) (i32.const 1))
              (memory (export "mem") 1)
              (table (export "tab") 2 funcref)
              (func $seven (result i32) (i32.const 7))
              (elem (i32.const 0) $seven))
            """));
        var user = Module.Load(Wat.ToWasm("""
            (module
              (import "p" "g" (global $g (mut i32)))
              (import "p" "mem" (memory 1))
              (import "p" "tab" (table 2 funcref))
              (type $t (func (result i32)))
              (func (export "main") (result i32)
                (global.set $g (i32.add (global.get $g) (i32.const 10)))
                (i32.store (i32.const 0) (i32.const 99))
                (call_indirect (type $t) (i32.const 0))))
            """));
        var store = new Store();
        var linker = new Linker();
        var first = linker.Instantiate(store, provider);
        linker.DefineInstance("p", first);
        var second = linker.Instantiate(store, user);
        Assert.Equal(7, store.Invoke(second.GetFunction("main"))[0].AsI32());
        Assert.Equal(11, first.GetGlobal("g").Value.AsI32());
        Assert.Equal(99, first.GetMemory("mem").Span[0]);
    }

    [Fact]
    public void Unknown_and_mismatched_imports_fail_to_link_naming_the_import()
    {
        var module = Module.Load(Wat.ToWasm("""(module (import "env" "f" (func (param i32))))"""));
        var store = new Store();
        var unknown = Assert.Throws<LinkException>(() => new Linker().Instantiate(store, module));
        Assert.Equal("unknown import: env.f", unknown.Message);
        var mismatched = Assert.Throws<LinkException>(() => new Linker()
            .DefineFunction("env", "f", new FuncType([ValType.I64], []), (_, _, _) => { })
            .Instantiate(store, module));
        Assert.StartsWith("incompatible import type", mismatched.Message);
    }

    [Fact]
    public void A_trap_reports_its_kind_function_name_and_byte_offset()
    {
        var bytes = Wat.ToWasm("""
            (module
              (func $helper (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
              (func (export "main") (result i32) (call $helper (i32.const 0))))
            """);
        var module = Module.Load(bytes);
        var store = new Store();
        var trap = Assert.Throws<TrapException>(() => store.Invoke(new Linker().Instantiate(store, module).GetFunction("main")));
        Assert.Equal(TrapKind.IntegerDivideByZero, trap.Kind);
        Assert.Equal(0, trap.FunctionIndex);
        Assert.Equal("helper", trap.FunctionName);
        Assert.Equal(0x6E, bytes[trap.Offset]);
        Assert.StartsWith("integer divide by zero in function 0 'helper' at byte 0x", trap.Message);
    }

    [Fact]
    public void A_host_function_failure_becomes_a_trap_and_a_process_exit_finishes_the_run()
    {
        var module = Module.Load(Wat.ToWasm("""
            (module (import "host" "f" (func $f)) (func (export "main") (call $f) (unreachable)))
            """));
        var store = new Store();
        var failing = new Linker().DefineFunction("host", "f", FuncType.Empty, (_, _, _) => throw new IOException("disk on fire"));
        var trap = Assert.Throws<TrapException>(() => store.Invoke(failing.Instantiate(store, module).GetFunction("main")));
        Assert.Equal(TrapKind.HostError, trap.Kind);
        Assert.Contains("disk on fire", trap.Message);

        var exiting = new Linker().DefineFunction("host", "f", FuncType.Empty, (_, _, _) => throw new ProcessExitException(3));
        var execution = store.Start(exiting.Instantiate(store, module).GetFunction("main"));
        Assert.Equal(ExecutionStatus.Finished, execution.Run());
        Assert.Equal(3, execution.ExitCode);
    }

    [Fact]
    public void A_host_function_can_suspend_instead_of_blocking_and_is_called_again_on_resume()
    {
        var module = Module.Load(Wat.ToWasm("""
            (module (import "host" "wait" (func $wait (result i32)))
              (global $before (mut i32) (i32.const 0))
              (func (export "main") (result i32)
                (global.set $before (i32.add (global.get $before) (i32.const 1)))
                (i32.add (call $wait) (global.get $before))))
            """));
        var calls = 0;
        var linker = new Linker().DefineFunction("host", "wait", new FuncType([], [ValType.I32]), (context, _, results) =>
        {
            if (++calls < 3)
            {
                context.Suspend(DateTime.UtcNow.AddMilliseconds(5));
                return;
            }
            results[0] = 40;
        });
        var store = new Store();
        var instance = linker.Instantiate(store, module);
        var execution = store.Start(instance.GetFunction("main"));
        Assert.Equal(ExecutionStatus.HostSuspended, execution.Run());
        Assert.NotNull(execution.WakeAt);

        var state = execution.Capture();
        var restored = linker.Instantiate(store, module);
        InstanceState.Capture(instance).RestoreInto(restored);
        var resumed = Execution.Restore(restored, state);
        Assert.Equal(ExecutionStatus.HostSuspended, resumed.Run());
        Assert.Equal(ExecutionStatus.Finished, resumed.Run());
        Assert.Equal(41, resumed.Results[0].AsI32());
        Assert.Equal(3, calls);
    }
}
