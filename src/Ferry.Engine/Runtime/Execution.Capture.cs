using Ferry.Engine.Interpreter;

namespace Ferry.Engine;

public sealed partial class Execution
{
    /// <summary>
    /// Captures the execution segment. Capturable states: not yet run, paused, or out of fuel; those always
    /// stop at a block head or instruction head, where every slot holds its Wasm value.
    /// </summary>
    public ExecutionState Capture()
    {
        if (Status is not (ExecutionStatus.Ready or ExecutionStatus.Paused or ExecutionStatus.OutOfFuel or ExecutionStatus.HostSuspended))
            throw new InvalidOperationException($"an execution can be captured when paused, out of fuel, suspended in a host call or not yet run, not when {Status}");
        if (_entry is not WasmFunction entry) throw new InvalidOperationException("a host-function call has no execution segment to capture");
        var top = _function!;
        var frames = new FrameState[_depth + 1];
        for (var i = 0; i < _depth; i++)
        {
            var frame = _frames[i];
            var function = FunctionOf(frame);
            if (function.Instance == CompiledFunction.Untranslated)
            {
                // Restored and not yet returned to: its pc is still the call's instruction index.
                frames[i] = new FrameState(function.Function.Index, frame.Fp, frame.Pc, AfterCall: true);
                continue;
            }
            RequireSameInstance(function, entry);
            var code = frame.Step ? function.Step : function.Fast;
            frames[i] = new FrameState(function.Function.Index, frame.Fp, code.Instructions[frame.Pc - 1], AfterCall: true);
        }
        RequireSameInstance(top, entry);
        frames[_depth] = new FrameState(top.Function.Index, _fp, TopInstruction(top), AfterCall: false);
        var used = _fp + top.FrameSize;
        return new ExecutionState
        {
            EntryFunction = entry.Index,
            Frames = frames,
            Stack = _stack.AsSpan(0, Math.Min(used, _stack.Length)).ToArray(),
            InstructionsExecuted = InstructionsExecuted,
        };
    }

    /// <summary>
    /// The module indices of the functions on the call stack, innermost first, each once, at most <paramref name="limit"/>;
    /// none once the execution has ended. Call it only while the execution does not run (at a safepoint).
    /// </summary>
    public uint[] FunctionsOnStack(int limit)
    {
        if (Status is ExecutionStatus.Finished or ExecutionStatus.Trapped || _entry is not WasmFunction entry || _function is null) return [];
        var found = new List<uint>();
        void Add(WasmFunction function)
        {
            if (function.Instance == entry.Instance && found.Count < limit && !found.Contains(function.Index)) found.Add(function.Index);
        }
        Add(_function.Function);
        for (var i = _depth - 1; i >= 0 && found.Count < limit; i--) Add(FunctionOf(_frames[i]).Function);
        return [.. found];
    }

    private int TopInstruction(CompiledFunction top)
    {
        if (Status == ExecutionStatus.Ready) return -1;
        var code = _step ? top.Step : top.Fast;
        // A suspended host call resumes at its call instruction, which then runs again (and is counted again).
        if (Status == ExecutionStatus.HostSuspended) return code.Instructions[_pc];
        var instr = code.Instrs[_pc];
        if (instr.Op is not (Op.FuelFast or Op.FuelStep) || instr.A < 0)
            throw new InvalidOperationException("the execution is not stopped at an instruction boundary");
        return instr.A;
    }

    private static void RequireSameInstance(CompiledFunction function, WasmFunction entry)
    {
        if (function.Instance != entry.Instance)
            throw new InvalidOperationException("frames of more than one instance on the stack cannot be captured");
    }

    /// <summary>
    /// Rebuilds an execution from a captured state in <paramref name="instance"/> (the same module, instantiated afresh).
    /// Only the top frame's function is translated here (a restore inside a migration's downtime translated every
    /// function on the stack: 16-20 ms for a compiler's); each caller is checked to resume after a call, and its function
    /// translated when the frame is returned to.
    /// </summary>
    public static Execution Restore(Instance instance, ExecutionState state)
    {
        var module = instance.Module;
        WasmFunction Function(uint index) =>
            index >= module.ImportedFunctionCount && index < module.FunctionCount && instance.Functions[index] is WasmFunction wasm
                ? wasm
                : throw new InvalidExecutionStateException($"function {index} is not a function defined by the module");
        if (state.Frames.Length == 0) throw new InvalidExecutionStateException("no frames");
        var entry = Function(state.EntryFunction);
        var top = Function(state.Frames[^1].FunctionIndex).Compiled;
        var execution = new Execution(instance.Store, entry, state, top.FrameSize);
        var previousFp = 0;
        for (var i = 0; i < state.Frames.Length; i++)
        {
            var frame = state.Frames[i];
            var function = Function(frame.FunctionIndex);
            var isTop = i == state.Frames.Length - 1;
            if (frame.AfterCall == isTop) throw new InvalidExecutionStateException($"frame {i} must {(isTop ? "not " : "")}be stopped after a call");
            var body = module.Codes[frame.FunctionIndex - module.ImportedFunctionCount];
            if (frame.Fp < previousFp || (long)frame.Fp + function.Type.Parameters.Length + body.LocalCount > state.Stack.Length)
                throw new InvalidExecutionStateException($"frame {i} has an impossible slot base {frame.Fp}");
            previousFp = frame.Fp;
            if (!function.IsTranslated)
            {
                if (!LiveCalls.IsLiveCall(body, frame.Instruction))
                    throw new InvalidExecutionStateException($"frame {i}: instruction {frame.Instruction} of function {frame.FunctionIndex} is not a call");
                execution.PushUntranslatedFrame(function, frame.Instruction, frame.Fp);
                continue;
            }
            var compiled = function.Compiled;
            var pc = StepPc(compiled, frame, i);
            if (isTop)
            {
                execution._function = compiled;
                execution._pc = pc;
                execution._fp = frame.Fp;
                execution._step = frame.Instruction >= 0;
            }
            else
            {
                execution.PushFrame(compiled, pc, frame.Fp, step: true);
            }
        }
        return execution;
    }

    private static int StepPc(CompiledFunction compiled, FrameState frame, int index)
    {
        if (frame.Instruction == -1 && !frame.AfterCall) return 0;
        if (frame.AfterCall)
        {
            return compiled.StepReturnPcOfCall.TryGetValue(frame.Instruction, out var returnPc)
                ? returnPc
                : throw new InvalidExecutionStateException($"frame {index}: instruction {frame.Instruction} of function {frame.FunctionIndex} is not a call");
        }
        return frame.Instruction >= 0 && frame.Instruction < compiled.StepPcOfInstruction.Length && compiled.StepPcOfInstruction[frame.Instruction] >= 0
            ? compiled.StepPcOfInstruction[frame.Instruction]
            : throw new InvalidExecutionStateException($"frame {index}: function {frame.FunctionIndex} has no instruction {frame.Instruction} to resume at");
    }
}
