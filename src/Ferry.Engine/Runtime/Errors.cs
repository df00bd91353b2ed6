namespace Ferry.Engine;

/// <summary>The spec's trap conditions.</summary>
public enum TrapKind
{
    Unreachable,
    IntegerDivideByZero,
    IntegerOverflow,
    InvalidConversionToInteger,
    OutOfBoundsMemoryAccess,
    OutOfBoundsTableAccess,
    UndefinedElement,
    UninitializedElement,
    IndirectCallTypeMismatch,
    CallStackExhausted,
    /// <summary>A host function failed; the message says how.</summary>
    HostError,
}

/// <summary>A WebAssembly trap: the spec's message, and where it happened.</summary>
public sealed class TrapException : Exception
{
    public TrapException(TrapKind kind, string? detail = null, int functionIndex = -1, string? functionName = null, int offset = -1)
        : base(Describe(kind, detail, functionIndex, functionName, offset))
    {
        Kind = kind;
        Detail = detail;
        FunctionIndex = functionIndex;
        FunctionName = functionName;
        Offset = offset;
    }

    public TrapKind Kind { get; }
    public string? Detail { get; }
    /// <summary>Index of the trapping function in its module's function index space, or -1.</summary>
    public int FunctionIndex { get; }
    /// <summary>The function's name from the name section, when present.</summary>
    public string? FunctionName { get; }
    /// <summary>Byte offset of the trapping instruction in the module, or -1.</summary>
    public int Offset { get; }

    /// <summary>The spec's wording for the trap kind, e.g. "integer divide by zero".</summary>
    public string SpecMessage => SpecText(Kind);

    public static string SpecText(TrapKind kind) => kind switch
    {
        TrapKind.Unreachable => "unreachable",
        TrapKind.IntegerDivideByZero => "integer divide by zero",
        TrapKind.IntegerOverflow => "integer overflow",
        TrapKind.InvalidConversionToInteger => "invalid conversion to integer",
        TrapKind.OutOfBoundsMemoryAccess => "out of bounds memory access",
        TrapKind.OutOfBoundsTableAccess => "out of bounds table access",
        TrapKind.UndefinedElement => "undefined element",
        TrapKind.UninitializedElement => "uninitialized element",
        TrapKind.IndirectCallTypeMismatch => "indirect call type mismatch",
        TrapKind.CallStackExhausted => "call stack exhausted",
        _ => "host error",
    };

    private static string Describe(TrapKind kind, string? detail, int functionIndex, string? functionName, int offset)
    {
        var text = detail is null ? SpecText(kind) : $"{SpecText(kind)}: {detail}";
        if (functionIndex < 0) return text;
        var name = functionName is null ? $"function {functionIndex}" : $"function {functionIndex} '{functionName}'";
        return offset < 0 ? $"{text} in {name}" : $"{text} in {name} at byte 0x{offset:x}";
    }
}

/// <summary>Instantiation failed to resolve an import ("unknown import", "incompatible import type").</summary>
public sealed class LinkException : Exception
{
    public LinkException(string reason, string importName) : base($"{reason}: {importName}")
    {
        Reason = reason;
        ImportName = importName;
    }

    public string Reason { get; }
    public string ImportName { get; }
}

/// <summary>
/// Thrown by a host function to end the whole execution with an exit code (WASI's proc_exit). The run loop
/// catches it and finishes with <see cref="Execution.ExitCode"/> set.
/// </summary>
public sealed class ProcessExitException(int code) : Exception($"process exited with code {code}")
{
    public int Code { get; } = code;
}
