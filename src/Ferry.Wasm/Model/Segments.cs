namespace Ferry.Wasm;

public enum SegmentMode : byte
{
    Active,
    Passive,
    Declarative,
}

/// <summary>An element segment. Function-index vectors are normalised to ref.func expressions.</summary>
public sealed class ElementSegment
{
    public required SegmentMode Mode { get; init; }
    public required ValType Type { get; init; }
    public uint TableIndex { get; init; }
    /// <summary>Active segments only.</summary>
    public ConstantExpression? Offset { get; init; }
    public required ConstantExpression[] Items { get; init; }
}

public sealed class DataSegment
{
    public required SegmentMode Mode { get; init; }
    public uint MemoryIndex { get; init; }
    /// <summary>Active segments only.</summary>
    public ConstantExpression? Offset { get; init; }
    public required ReadOnlyMemory<byte> Bytes { get; init; }
}

public sealed class Global
{
    public required GlobalType Type { get; init; }
    public required ConstantExpression Init { get; init; }
}
