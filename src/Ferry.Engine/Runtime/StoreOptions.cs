namespace Ferry.Engine;

/// <summary>Resource limits of a store. The defaults let a function recurse 100,000 deep.</summary>
public sealed record StoreOptions
{
    /// <summary>Wasm call frames before "call stack exhausted".</summary>
    public int MaxCallDepth { get; init; } = 1_000_000;
    /// <summary>Value-stack slots (8 bytes each) before "call stack exhausted".</summary>
    public int MaxValueStackSlots { get; init; } = 32 * 1024 * 1024;
    /// <summary>Upper bound on any memory's pages, below the spec's 65,536.</summary>
    public uint MaxMemoryPages { get; init; } = 65536;
    /// <summary>Upper bound on any table's elements.</summary>
    public uint MaxTableElements { get; init; } = 10_000_000;
}
