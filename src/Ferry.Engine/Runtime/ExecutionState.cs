namespace Ferry.Engine;

/// <summary>
/// Where a frame continues, in terms that survive retranslation: a function of the module and the index of a
/// Wasm instruction in its body (counting every instruction from 0). A caller frame continues after the call
/// at <see cref="Instruction"/>; the top frame continues at it; -1 means the start of the function.
/// </summary>
public readonly record struct FrameState(uint FunctionIndex, int Fp, int Instruction, bool AfterCall);

/// <summary>
/// The execution segment of a process as plain data: call frames from the entry function up, and the value
/// stack slots they use. Together with <see cref="InstanceState"/> and the memory it is everything needed
/// to resume at the same instruction in another store.
/// </summary>
public sealed class ExecutionState
{
    public required uint EntryFunction { get; init; }
    /// <summary>Frames from the entry function (first) to the running one (last).</summary>
    public required FrameState[] Frames { get; init; }
    /// <summary>Value stack slots in use, from slot 0.</summary>
    public required ulong[] Stack { get; init; }
    public required long InstructionsExecuted { get; init; }
}

/// <summary>Thrown when an execution state cannot be restored into an instance (it names a function or position that does not exist).</summary>
public sealed class InvalidExecutionStateException(string message) : Exception(message);
