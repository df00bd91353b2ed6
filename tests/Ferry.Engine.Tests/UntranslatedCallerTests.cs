using System.Text.Json;
using Ferry.Engine.Interpreter;
using Ferry.Tests.Shared;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>
/// A restore translates only the running function; each caller frame is checked to resume after a call the translator
/// keeps, and its function is translated when the frame is returned to, or when the function saves a frame of its own.
/// </summary>
public sealed class UntranslatedCallerTests
{
    // Function indices in Programs/mutual.wat.
    private const int Even = 0, Odd = 1, Walk = 2;

    private static (Store, Instance) Instantiate(string program)
    {
        var store = new Store();
        return (store, new Linker().Instantiate(store, Module.Load(Wat.Program(program))));
    }

    private static WasmFunction Function(Instance instance, int index) => (WasmFunction)instance.Functions[index];

    /// <summary>
    /// Runs mutual.wat's main until its stack is deep in the recursion and its top frame has just entered <paramref name="top"/>
    /// with an argument of at least 2, so that it calls on (the other function, and that one this one again).
    /// </summary>
    private static (Execution, Instance) DeepIn(int top)
    {
        var (store, instance) = Instantiate("mutual");
        var execution = store.Start(instance.GetFunction("main"));
        while (true)
        {
            var state = execution.Capture();
            var frame = state.Frames[^1];
            if (state.Frames.Length >= 40 && frame.FunctionIndex == (uint)top && frame.Instruction == 0 && state.Stack[frame.Fp] >= 2) return (execution, instance);
            Assert.Equal(ExecutionStatus.OutOfFuel, execution.Run(state.Frames.Length < 30 ? 13 : 1));
        }
    }

    private static (Execution, Instance) RestoredElsewhere(Execution execution, Instance instance)
    {
        var state = execution.Capture();
        var globals = InstanceState.Capture(instance);
        var (_, moved) = Instantiate("mutual");
        globals.RestoreInto(moved);
        return (Execution.Restore(moved, state), moved);
    }

    /// <summary>Main's result and the instructions it took, run in one go: a frame resumed anywhere but after its call changes the count if not the result.</summary>
    private static (int Result, long Instructions) Uninterrupted()
    {
        var (store, instance) = Instantiate("mutual");
        var execution = store.Start(instance.GetFunction("main"));
        Assert.Equal(ExecutionStatus.Finished, execution.Run());
        return (execution.Results[0].AsI32(), execution.InstructionsExecuted);
    }

    [Fact]
    public void A_restore_translates_only_the_running_function_and_each_caller_when_it_is_returned_to()
    {
        var (execution, instance) = DeepIn(top: Odd);
        var (restored, moved) = RestoredElsewhere(execution, instance);
        Assert.True(Function(moved, Odd).IsTranslated);
        Assert.False(Function(moved, Even).IsTranslated);
        Assert.False(Function(moved, Walk).IsTranslated);

        Assert.Equal(ExecutionStatus.Finished, restored.Run());
        Assert.Equal(Uninterrupted(), (restored.Results[0].AsI32(), restored.InstructionsExecuted));
        Assert.True(Function(moved, Walk).IsTranslated);
    }

    [Fact]
    public void The_functions_on_the_stack_are_named_innermost_first_once_each_and_none_once_the_run_ends()
    {
        var (execution, instance) = DeepIn(top: Odd);
        var main = instance.GetFunction("main") is WasmFunction entry ? entry.Index : throw new InvalidOperationException("main is not a Wasm function");
        Assert.Equal([Odd, Even, Walk, main], execution.FunctionsOnStack(64));
        Assert.Equal([Odd, Even], execution.FunctionsOnStack(2));
        // Restored, its callers are untranslated placeholders until returned to: named all the same.
        var (restored, _) = RestoredElsewhere(execution, instance);
        Assert.Equal([Odd, Even, Walk, main], restored.FunctionsOnStack(64));

        Assert.Equal(ExecutionStatus.Finished, restored.Run());
        Assert.Empty(restored.FunctionsOnStack(64));
    }

    [Fact]
    public void Callers_translated_ahead_of_the_restore_resume_after_their_calls_with_the_uninterrupted_result()
    {
        var (execution, instance) = DeepIn(top: Even);
        var state = execution.Capture();
        var globals = InstanceState.Capture(instance);
        var (_, moved) = Instantiate("mutual");
        globals.RestoreInto(moved);
        // As a migration's target does while the memory moves, from another thread.
        var ahead = new Thread(() =>
        {
            foreach (var index in execution.FunctionsOnStack(64)) Function(moved, (int)index).Translate();
        });
        ahead.Start();
        ahead.Join();
        var restored = Execution.Restore(moved, state);
        Assert.Equal(state.Frames, restored.Capture().Frames);

        Assert.Equal(ExecutionStatus.Finished, restored.Run());
        Assert.Equal(Uninterrupted(), (restored.Results[0].AsI32(), restored.InstructionsExecuted));
    }

    [Fact]
    public void Calls_made_afresh_before_the_restored_callers_return_leave_their_frames_resuming_where_they_stopped()
    {
        // The top function is even; its callers odd and walk are untranslated. Even calls odd afresh, and odd, saving its
        // frame to call even, finds restored frames of its own below: they take the pcs after their calls then.
        var (execution, instance) = DeepIn(top: Even);
        var before = execution.Capture();
        var (restored, _) = RestoredElsewhere(execution, instance);
        while (restored.CallDepth < before.Frames.Length + 2) Assert.Equal(ExecutionStatus.OutOfFuel, restored.Run(1));
        var callers = before.Frames[..^1];
        Assert.Equal(callers, restored.Capture().Frames[..callers.Length]);

        while (restored.Run(29) == ExecutionStatus.OutOfFuel)
        {
        }
        Assert.Equal(ExecutionStatus.Finished, restored.Status);
        Assert.Equal(Uninterrupted(), (restored.Results[0].AsI32(), restored.InstructionsExecuted));
    }

    [Fact]
    public void Capturing_a_restored_execution_before_its_callers_return_gives_back_the_state_it_came_from()
    {
        var (execution, instance) = DeepIn(top: Odd);
        var before = execution.Capture();
        var (restored, _) = RestoredElsewhere(execution, instance);
        var after = restored.Capture();
        Assert.Equal(before.Frames, after.Frames);
        Assert.Equal(before.Stack, after.Stack);
        Assert.Equal(before.InstructionsExecuted, after.InstructionsExecuted);
    }

    [Fact]
    public void A_caller_frame_that_does_not_resume_after_a_call_the_translation_keeps_is_refused_at_restore()
    {
        var (store, instance) = Instantiate("mutual");
        // unreachable_call: local.get 0, call (1), return, local.get 3, call (4, unreachable), end.
        var execution = store.Start(instance.GetFunction("unreachable_call"), Value.I32(50));
        while (execution.Capture().Frames.Length < 3) Assert.Equal(ExecutionStatus.OutOfFuel, execution.Run(3));
        var state = execution.Capture();
        Assert.Equal(1, state.Frames[0].Instruction);
        var (_, fresh) = Instantiate("mutual");
        Execution.Restore(fresh, state);

        foreach (var (instruction, why) in new[] { (0, "a local.get"), (4, "a call after return"), (6, "past the end"), (-1, "no instruction") })
        {
            var frames = state.Frames.ToArray();
            frames[0] = frames[0] with { Instruction = instruction };
            var forged = new ExecutionState { EntryFunction = state.EntryFunction, Frames = frames, Stack = state.Stack, InstructionsExecuted = state.InstructionsExecuted };
            var (_, target) = Instantiate("mutual");
            var refusal = Assert.Throws<InvalidExecutionStateException>(() => Execution.Restore(target, forged));
            Assert.True(refusal.Message.Contains("is not a call"), $"{why}: {refusal.Message}");
        }
    }

    [Fact]
    public void The_restore_check_and_the_translator_agree_on_every_instruction_of_the_test_programs()
    {
        var sites = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Programs"), "*.wat"))
        {
            var (_, instance) = Instantiate(Path.GetFileNameWithoutExtension(file));
            sites += AssertAgreement(instance);
        }
        Assert.True(sites >= 10, $"{sites} call sites");
    }

    [SpecFact]
    public void The_restore_check_and_the_translator_agree_on_every_instruction_of_the_spec_suites_modules()
    {
        var modules = 0;
        var sites = 0;
        foreach (var name in SpecSuite.RunnableFiles())
        {
            var json = SpecSuite.Convert(name);
            using var commands = JsonDocument.Parse(File.ReadAllText(json));
            foreach (var command in commands.RootElement.GetProperty("commands").EnumerateArray())
            {
                if (command.GetProperty("type").GetString() != "module" || !command.TryGetProperty("filename", out var filename)) continue;
                if (Instantiable(Path.Combine(Path.GetDirectoryName(json)!, filename.GetString()!)) is not { } instance) continue;
                modules++;
                sites += AssertAgreement(instance);
            }
        }
        Assert.True(modules > 500 && sites > 500, $"{modules} modules, {sites} call sites");
    }

    /// <summary>The module instantiated with stand-ins for its imported functions (without running its start), or null if it imports anything else or does not instantiate.</summary>
    private static Instance? Instantiable(string path)
    {
        Module module;
        try
        {
            module = Module.Load(File.ReadAllBytes(path));
        }
        catch (WasmException)
        {
            return null;
        }
        var linker = new Linker();
        foreach (var import in module.Imports)
        {
            if (import.Kind != ExternKind.Func) return null;
            linker.DefineFunction(import.Module, import.Name, module.Types[import.TypeIndex], (_, _, _) => throw new InvalidOperationException("not called"));
        }
        try
        {
            return linker.InstantiateForRestore(new Store(), module);
        }
        catch (Exception e) when (e is LinkException or TrapException)
        {
            return null;
        }
    }

    /// <summary>Checks every instruction index of every function (and some beyond) against the translation; returns the calls found.</summary>
    private static int AssertAgreement(Instance instance)
    {
        var module = instance.Module;
        var sites = 0;
        for (var index = module.ImportedFunctionCount; index < module.FunctionCount; index++)
        {
            var compiled = Function(instance, index).Compiled;
            var body = module.Codes[index - module.ImportedFunctionCount];
            for (var instruction = -1; instruction <= compiled.StepPcOfInstruction.Length + 1; instruction++)
            {
                var kept = compiled.StepReturnPcOfCall.ContainsKey(instruction);
                Assert.True(kept == LiveCalls.IsLiveCall(body, instruction), $"function {index}, instruction {instruction}: the translator {(kept ? "keeps" : "has no")} a call there");
                if (kept) sites++;
            }
        }
        return sites;
    }
}
