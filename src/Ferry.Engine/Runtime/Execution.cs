using Ferry.Engine.Interpreter;
using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>Why <see cref="Execution.Run"/> returned. Every status but Finished and Trapped is resumable.</summary>
public enum ExecutionStatus
{
    /// <summary>Created, not yet run.</summary>
    Ready,
    Finished,
    Trapped,
    /// <summary>The fuel given to this run is spent, exactly.</summary>
    OutOfFuel,
    /// <summary>A pause was requested and a safepoint (block head, loop back-edge, call) reached.</summary>
    Paused,
    /// <summary>A load or store touched a memory frame that is not present; <see cref="Execution.AbsentFrame"/> names it.</summary>
    FrameAbsent,
    /// <summary>A host function would have blocked and asked to be called again (<see cref="Execution.WakeAt"/>); resuming repeats the call.</summary>
    HostSuspended,
}

/// <summary>
/// A saved caller frame: which function (by its address in the store), where to continue, its slot base, which
/// translation. Plain data: a function reference stored per call cost a GC write barrier (17% of fib's time).
/// </summary>
internal readonly record struct Frame(int Address, int Pc, int Fp, bool Step);

/// <summary>
/// One thread of Wasm execution whose whole state is data: a value stack of slots, a frame stack, and the
/// current position. It runs in slices and stops with a status; nothing of it lives on the host stack
/// between slices.
/// </summary>
public sealed partial class Execution
{
    private const int InitialStackSlots = 1024;
    private const int InitialFrames = 64;

    private readonly Store _store;
    private readonly FunctionInstance _entry;
    private readonly HostCallContext _hostContext;
    private ulong[] _stack;
    private Frame[] _frames = new Frame[InitialFrames];
    private int _depth;
    private CompiledFunction? _function;
    private int _pc;
    private int _fp;
    private bool _step;
    private int _pauseRequested;
    // The run loop's rarely changing context, kept in fields so the loop's locals fit in registers.
    private unsafe Instr* _codeBase;
    private unsafe ulong* _stackBase;
    private unsafe int* _branchTable;
    /// <summary>The compiled code of each function a frame names, by store address (filled as functions are called).</summary>
    private CompiledFunction?[] _compiledAt = [];
    private Instance? _instance;
    private GlobalInstance[] _globals = [];
    private Memory.LinearMemory? _memory;
    private readonly int _maxDepth;
    private ulong[] _hostResults = new ulong[8];

    internal Execution(Store store, FunctionInstance entry, Value[] arguments)
    {
        _store = store;
        _entry = entry;
        _hostContext = new HostCallContext(this);
        _maxDepth = store.Options.MaxCallDepth - 1;
        var parameters = entry.Type.Parameters;
        if (arguments.Length != parameters.Length)
            throw new ArgumentException($"{entry.Name ?? "function"} takes {parameters.Length} arguments, got {arguments.Length}");
        for (var i = 0; i < parameters.Length; i++)
        {
            if (arguments[i].Type != parameters[i])
                throw new ArgumentException($"argument {i} must be {parameters[i].Name()}, got {arguments[i].Type.Name()}");
        }
        var frameSize = entry is WasmFunction wasm ? wasm.Compiled.FrameSize : 0;
        _stack = GC.AllocateArray<ulong>(Math.Max(InitialStackSlots, Math.Max(frameSize, arguments.Length) * 2), pinned: true);
        for (var i = 0; i < arguments.Length; i++) _stack[i] = arguments[i].Bits;
        if (entry is WasmFunction function)
        {
            _function = function.Compiled;
            Array.Clear(_stack, _function.ParamCount, _function.LocalCount - _function.ParamCount);
        }
    }

    /// <summary>A restored execution: stopped where the state was captured, resumable with <see cref="Run"/>.</summary>
    private Execution(Store store, WasmFunction entry, ExecutionState state, int largestFrame)
    {
        _store = store;
        _entry = entry;
        _hostContext = new HostCallContext(this);
        _maxDepth = store.Options.MaxCallDepth - 1;
        _stack = GC.AllocateArray<ulong>(Math.Max(InitialStackSlots, (state.Stack.Length + largestFrame) * 2), pinned: true);
        state.Stack.CopyTo(_stack, 0);
        InstructionsExecuted = state.InstructionsExecuted;
        Status = ExecutionStatus.Paused;
    }

    public ExecutionStatus Status { get; private set; } = ExecutionStatus.Ready;
    /// <summary>The entry function's results, once <see cref="Status"/> is Finished.</summary>
    public Value[] Results { get; private set; } = [];
    /// <summary>The code a host function ended the execution with (see <see cref="ProcessExitException"/>), if any.</summary>
    public int? ExitCode { get; private set; }
    /// <summary>The trap, once <see cref="Status"/> is Trapped.</summary>
    public TrapException? Trap { get; private set; }
    /// <summary>The absent memory frame that stopped the run, when <see cref="Status"/> is FrameAbsent.</summary>
    public long AbsentFrame { get; private set; } = -1;
    /// <summary>Wasm instructions executed so far, over all runs (structural markers are free).</summary>
    public long InstructionsExecuted { get; private set; }
    /// <summary>When a suspended host call is worth retrying (UTC), if it said.</summary>
    public DateTime? WakeAt { get; private set; }
    /// <summary>Wasm frames on the call stack.</summary>
    public int CallDepth => _function is null ? 0 : _depth + 1;

    /// <summary>Asks a running (or the next) slice to stop at its next safepoint with status Paused. Thread-safe.</summary>
    public void RequestPause() => Volatile.Write(ref _pauseRequested, 1);

    /// <summary>
    /// Runs until finished, trapped, paused, a frame is absent, or <paramref name="fuel"/> Wasm instructions
    /// have executed. Resumes exactly where the previous run stopped.
    /// </summary>
    public ExecutionStatus Run(long fuel = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fuel);
        if (Status is ExecutionStatus.Finished or ExecutionStatus.Trapped)
            throw new InvalidOperationException($"the execution has already {(Status == ExecutionStatus.Finished ? "finished" : "trapped")}");
        if (_entry is HostFunction host)
        {
            Status = CallHostEntry(host);
            return Status;
        }
        var remaining = fuel;
        Status = RunLoop(ref remaining);
        InstructionsExecuted += fuel - remaining;
        return Status;
    }

    private ExecutionStatus CallHostEntry(HostFunction host)
    {
        var parameters = host.Type.Parameters.Length;
        var results = new ulong[host.Type.Results.Length];
        _hostContext.Caller = null;
        try
        {
            host.Callback(_hostContext, _stack.AsSpan(0, parameters), results);
        }
        catch (ProcessExitException exit)
        {
            ExitCode = exit.Code;
            return ExecutionStatus.Finished;
        }
        catch (Exception failure)
        {
            Trap = failure as TrapException ?? HostFailure(host, failure);
            return ExecutionStatus.Trapped;
        }
        Results = MakeResults(host.Type, results);
        return ExecutionStatus.Finished;
    }

    /// <summary>A host function's own failure becomes a trap of the guest, never an exception through the embedder.</summary>
    private static TrapException HostFailure(HostFunction host, Exception failure) =>
        new(TrapKind.HostError, $"{host.Name ?? "host function"} failed: {failure.GetType().Name}: {failure.Message}");

    private static Value[] MakeResults(FuncType type, ReadOnlySpan<ulong> slots)
    {
        var results = new Value[type.Results.Length];
        for (var i = 0; i < results.Length; i++) results[i] = new Value(type.Results[i], slots[i]);
        return results;
    }

    private static TrapException MakeTrap(TrapKind kind, CompiledFunction function, int pc, bool step)
    {
        var code = step ? function.Step : function.Fast;
        var offset = pc >= 0 && pc < code.Offsets.Length ? code.Offsets[pc] : -1;
        return new TrapException(kind, null, (int)function.Function.Index, function.Function.Name, offset);
    }

    /// <summary>Grows the pinned value stack so that slots [0, needed) exist, or returns false at the limit.</summary>
    private bool GrowStack(long needed)
    {
        if (needed > _store.Options.MaxValueStackSlots) return false;
        var size = (long)_stack.Length;
        while (size < needed) size *= 2;
        size = Math.Min(size, _store.Options.MaxValueStackSlots);
        var grown = GC.AllocateArray<ulong>((int)size, pinned: true);
        _stack.CopyTo(grown, 0);
        _stack = grown;
        return true;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void PushFrame(CompiledFunction function, int pc, int fp, bool step)
    {
        var address = function.Address;
        if ((uint)address >= (uint)_compiledAt.Length || _compiledAt[address] != function) Remember(function);
        if (_depth == _frames.Length) Array.Resize(ref _frames, _frames.Length * 2);
        _frames[_depth++] = new Frame(address, pc, fp, step);
    }

    private void Remember(CompiledFunction function)
    {
        if (function.Address >= _compiledAt.Length) Array.Resize(ref _compiledAt, Math.Max(function.Address + 1, _compiledAt.Length * 2));
        // Frames of this function restored untranslated lie deeper than the one being saved, whose whole frame the stack
        // already holds: theirs fit below it, so the stack needs no growth for them.
        if (_compiledAt[function.Address] is { } earlier && earlier.Instance == CompiledFunction.Untranslated) Translated(function, _depth);
        _compiledAt[function.Address] = function;
    }

    /// <summary>A caller frame restored with its function untranslated, to resume after the call at Wasm instruction <paramref name="instruction"/>.</summary>
    private void PushUntranslatedFrame(WasmFunction function, int instruction, int fp)
    {
        var address = function.Address;
        if (address >= _compiledAt.Length) Array.Resize(ref _compiledAt, Math.Max(address + 1, _compiledAt.Length * 2));
        _compiledAt[address] ??= CompiledFunction.Placeholder(function);
        if (_depth == _frames.Length) Array.Resize(ref _frames, _frames.Length * 2);
        // Its pc is the call's instruction index until the function is translated.
        _frames[_depth++] = new Frame(address, instruction, fp, Step: true);
    }

    /// <summary>
    /// <paramref name="compiled"/> is now the translation of frames restored untranslated among the first
    /// <paramref name="frames"/>: each gets the pc after its call. Returns the stack slots the deepest-reaching of them needs.
    /// </summary>
    private long Translated(CompiledFunction compiled, int frames)
    {
        var address = compiled.Address;
        long needed = 0;
        for (var i = 0; i < frames; i++)
        {
            var frame = _frames[i];
            if (frame.Address != address) continue;
            // The restore checked that each of these instructions is a call the translation keeps.
            _frames[i] = frame with { Pc = compiled.StepReturnPcOfCall[frame.Pc] };
            needed = Math.Max(needed, (long)frame.Fp + compiled.FrameSize);
        }
        _compiledAt[address] = compiled;
        return needed;
    }

    /// <summary>
    /// Returning to a frame restored untranslated (the frame just popped, at <see cref="_depth"/>): translates its
    /// function, and grows the stack for its frame. Returns the translation, or null if the stack cannot grow.
    /// </summary>
    private unsafe CompiledFunction? TranslateReturnedTo(CompiledFunction placeholder)
    {
        var compiled = placeholder.Function.Compiled;
        var needed = Translated(compiled, _depth + 1);
        if (needed > _stack.Length)
        {
            if (!GrowStack(needed)) return null;
            _stackBase = (ulong*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_stack));
        }
        return compiled;
    }

    /// <summary>The function a saved frame runs.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private CompiledFunction FunctionOf(in Frame frame) => _compiledAt[frame.Address]!;
}
