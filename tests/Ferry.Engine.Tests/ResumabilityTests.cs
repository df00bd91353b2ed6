using Ferry.Tests.Shared;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>
/// Running a program in fuel slices, or capturing and restoring it between slices, gives exactly what one
/// uninterrupted run gives: results (or trap), memory and globals, and the same instruction count.
/// </summary>
public sealed class ResumabilityTests
{
    public static TheoryData<string> Programs() =>
        ["fib", "loops", "memory", "indirect", "multivalue", "bulk", "tables", "brtable", "globals", "trap", "floats", "mutual"];

    private sealed record Outcome(ExecutionStatus Status, Value[] Results, TrapKind? Trap, byte[] Memory, Value[] Globals, long Instructions);

    private static (Store, Instance) Instantiate(string program)
    {
        var store = new Store();
        return (store, new Linker().Instantiate(store, Module.Load(Wat.Program(program))));
    }

    private static Outcome Finish(Execution execution, Instance instance) => new(
        execution.Status,
        execution.Results,
        execution.Trap?.Kind,
        instance.Memory?.Span.ToArray() ?? [],
        [.. Enumerable.Range(0, instance.Module.GlobalCount).Select(i => instance.Global((uint)i).Value)],
        execution.InstructionsExecuted);

    private static Outcome Uninterrupted(string program)
    {
        var (store, instance) = Instantiate(program);
        var execution = store.Start(instance.GetFunction("main"));
        execution.Run();
        return Finish(execution, instance);
    }

    private static void AssertSame(Outcome expected, Outcome actual)
    {
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.Results, actual.Results);
        Assert.Equal(expected.Trap, actual.Trap);
        Assert.Equal(expected.Globals, actual.Globals);
        Assert.True(expected.Memory.AsSpan().SequenceEqual(actual.Memory), "memory differs");
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public void Running_in_fuel_slices_of_1_7_and_1000_equals_one_uninterrupted_run(string program)
    {
        var expected = Uninterrupted(program);
        Assert.True(expected.Status is ExecutionStatus.Finished or ExecutionStatus.Trapped);
        foreach (var slice in new long[] { 1, 7, 1000 })
        {
            var (store, instance) = Instantiate(program);
            var execution = store.Start(instance.GetFunction("main"));
            long given = 0;
            while (true)
            {
                given += slice;
                if (execution.Run(slice) != ExecutionStatus.OutOfFuel) break;
                Assert.Equal(given, execution.InstructionsExecuted);
            }
            var actual = Finish(execution, instance);
            AssertSame(expected, actual);
            if (expected.Status == ExecutionStatus.Finished) Assert.Equal(expected.Instructions, actual.Instructions);
        }
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public void Capturing_and_restoring_into_a_new_store_after_every_slice_equals_one_uninterrupted_run(string program)
    {
        var expected = Uninterrupted(program);
        var (store, instance) = Instantiate(program);
        var execution = store.Start(instance.GetFunction("main"));
        var moves = 0;
        while (execution.Run(997) == ExecutionStatus.OutOfFuel)
        {
            var state = execution.Capture();
            var instanceState = InstanceState.Capture(instance);
            var memory = instance.Memory?.Span.ToArray();
            (store, instance) = Instantiate(program);
            instanceState.RestoreInto(instance);
            memory?.CopyTo(instance.Memory!.Span);
            execution = Execution.Restore(instance, state);
            moves++;
        }
        Assert.True(moves > 0);
        AssertSame(expected, Finish(execution, instance));
    }

    /// <summary>
    /// A snapshot carries a table's elements only once something wrote it since instantiation (a new instance of the
    /// module holds the others): moved after every single instruction, tables.wat (grow, set, fill, copy, then init
    /// halfway) ends as it does unmoved, and its table filled by an active segment alone travels as instantiated throughout.
    /// </summary>
    [Fact]
    public void A_table_nothing_wrote_travels_as_instantiated_and_one_written_travels_in_full_even_moved_at_every_instruction()
    {
        var expected = Uninterrupted("tables");
        var (store, instance) = Instantiate("tables");
        Assert.All(InstanceState.Capture(instance).Tables, Assert.Null);
        var execution = store.Start(instance.GetFunction("main"));
        InstanceState? last = null;
        while (execution.Run(1) == ExecutionStatus.OutOfFuel)
        {
            var state = execution.Capture();
            last = InstanceState.Capture(instance);
            (store, instance) = Instantiate("tables");
            last.RestoreInto(instance);
            execution = Execution.Restore(instance, state);
        }
        AssertSame(expected, Finish(execution, instance));
        Assert.Equal(expected.Instructions, execution.InstructionsExecuted);
        Assert.NotNull(last!.Tables[0]);
        Assert.NotNull(last.Tables[1]);
        Assert.Null(last.Tables[2]);
    }

    [Fact]
    public void A_pause_requested_from_another_thread_stops_at_a_safepoint_and_the_run_resumes()
    {
        var expected = Uninterrupted("loops");
        var (store, instance) = Instantiate("loops");
        var execution = store.Start(instance.GetFunction("main"));
        execution.RequestPause();
        Assert.Equal(ExecutionStatus.Paused, execution.Run());
        var pauses = 1;
        var pauser = new Thread(() =>
        {
            while (execution.Status != ExecutionStatus.Finished)
            {
                execution.RequestPause();
                Thread.Yield();
            }
        });
        pauser.Start();
        while (execution.Run() == ExecutionStatus.Paused) pauses++;
        pauser.Join();
        Assert.Equal(ExecutionStatus.Finished, execution.Status);
        Assert.Equal(expected.Results, execution.Results);
        Assert.True(pauses >= 1);
    }
}
