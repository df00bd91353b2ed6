namespace Ferry.Wasm;

/// <summary>An import. Exactly one of the descriptor members applies, chosen by <see cref="Kind"/>.</summary>
public sealed class Import
{
    public required string Module { get; init; }
    public required string Name { get; init; }
    public required ExternKind Kind { get; init; }
    /// <summary>For <see cref="ExternKind.Func"/>: index into <see cref="Module.Types"/>.</summary>
    public uint TypeIndex { get; init; }
    public TableType Table { get; init; }
    public MemoryType Memory { get; init; }
    public GlobalType Global { get; init; }

    public override string ToString() => $"{Module}.{Name} ({Kind})";
}

public sealed class Export
{
    public required string Name { get; init; }
    public required ExternKind Kind { get; init; }
    public required uint Index { get; init; }
}
