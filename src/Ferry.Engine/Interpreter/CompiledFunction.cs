using Ferry.Wasm;

namespace Ferry.Engine.Interpreter;

/// <summary>One translation of a function body: instructions, their byte offsets in the module, and branch tables.</summary>
internal sealed unsafe class CodeBlock
{
    private readonly Instr[] _instrs = [];

    /// <summary>The instructions, in a pinned array so the run loop can walk them with a raw pointer.</summary>
    public required Instr[] Instrs
    {
        get => _instrs;
        init
        {
            _instrs = GC.AllocateUninitializedArray<Instr>(Math.Max(value.Length, 1), pinned: true);
            value.CopyTo(_instrs, 0);
            Start = (Instr*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_instrs));
        }
    }

    /// <summary>Address of the first instruction; stable because the array is pinned.</summary>
    public Instr* Start { get; private set; }

    /// <summary>Module byte offset of the Wasm instruction each internal instruction came from (for traps).</summary>
    public required int[] Offsets { get; init; }
    /// <summary>Index of the Wasm instruction each internal instruction came from (its stable position).</summary>
    public required int[] Instructions { get; init; }
    // Holds the pinned copy alive: the run loop reads it only through BranchStart.
    private readonly int[] _branchTable = [];

    /// <summary>Targets of br_table instructions, as offsets from the instruction after the br_table; pinned, like the instructions.</summary>
    public required int[] BranchTable
    {
        init
        {
            _branchTable = GC.AllocateUninitializedArray<int>(Math.Max(value.Length, 1), pinned: true);
            value.CopyTo(_branchTable, 0);
            BranchStart = (int*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_branchTable));
        }
    }

    /// <summary>Address of the first branch target: the run loop keeps it as a pointer, which costs no GC write barrier per call.</summary>
    public int* BranchStart { get; private set; }
}

/// <summary>
/// A function translated twice to the same slot layout: <see cref="Fast"/> fuses instructions and charges
/// fuel per straight-line block; <see cref="Step"/> has one fuel head per Wasm instruction, so execution
/// can stop after exactly any number of instructions. Both agree on every slot at every block head.
/// </summary>
internal sealed class CompiledFunction
{
    public required WasmFunction Function { get; init; }
    public required Instance Instance { get; init; }
    public required CodeBlock Fast { get; init; }
    public required CodeBlock Step { get; init; }
    /// <summary>The function's address in its store, which saved frames name it by.</summary>
    public int Address => Function.Address;
    public required int ParamCount { get; init; }
    public required int ResultCount { get; init; }
    /// <summary>Parameters plus declared locals.</summary>
    public required int LocalCount { get; init; }
    /// <summary>Slots a frame needs: locals plus the deepest operand stack.</summary>
    public required int FrameSize { get; init; }
    public required WasmFunction[] Callees { get; init; }
    public required HostFunction[] HostCallees { get; init; }
    /// <summary>For each Wasm instruction index, the pc of its fuel head in <see cref="Step"/>, or -1 (structural or dead).</summary>
    public required int[] StepPcOfInstruction { get; init; }
    /// <summary>For each call instruction's Wasm index, the pc in <see cref="Step"/> where its caller resumes.</summary>
    public required IReadOnlyDictionary<int, int> StepReturnPcOfCall { get; init; }

    /// <summary>
    /// The instance of no function: a caller frame restored with its function not yet translated names a placeholder of
    /// this instance, so that returning to it leaves the run loop's same-instance path for the one that translates it.
    /// </summary>
    public static readonly Instance Untranslated = new(new Store(), Module.Load(new byte[] { 0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00 }));

    private static readonly CodeBlock NoCode = new() { Instrs = [], Offsets = [], Instructions = [], BranchTable = [] };

    /// <summary>Stands for <paramref name="function"/> in restored caller frames until the first of them is returned to; it has no code.</summary>
    public static CompiledFunction Placeholder(WasmFunction function) => new()
    {
        Function = function,
        Instance = Untranslated,
        Fast = NoCode,
        Step = NoCode,
        ParamCount = 0,
        ResultCount = 0,
        LocalCount = 0,
        FrameSize = 0,
        Callees = [],
        HostCallees = [],
        StepPcOfInstruction = [],
        StepReturnPcOfCall = new Dictionary<int, int>(),
    };
}
