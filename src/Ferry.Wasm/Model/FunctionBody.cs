namespace Ferry.Wasm;

/// <summary>A run of locals of one type, as the code section declares them.</summary>
public readonly record struct LocalGroup(uint Count, ValType Type);

/// <summary>
/// A defined function's body: its declared locals and its instruction bytes, kept undecoded.
/// The validator and the engine each walk <see cref="Code"/> with a <see cref="Binary.WasmReader"/>.
/// </summary>
public sealed class FunctionBody
{
    public required LocalGroup[] Locals { get; init; }
    /// <summary>Total declared locals (parameters excluded).</summary>
    public required int LocalCount { get; init; }
    /// <summary>The instruction bytes, including the final end.</summary>
    public required ReadOnlyMemory<byte> Code { get; init; }
    /// <summary>Offset of <see cref="Code"/> in the module's bytes, for error positions and trap offsets.</summary>
    public required int CodeOffset { get; init; }

    public ValType LocalType(int declaredIndex)
    {
        var remaining = (uint)declaredIndex;
        foreach (var group in Locals)
        {
            if (remaining < group.Count) return group.Type;
            remaining -= group.Count;
        }
        throw new ArgumentOutOfRangeException(nameof(declaredIndex));
    }
}

public sealed class CustomSection
{
    public required string Name { get; init; }
    public required ReadOnlyMemory<byte> Content { get; init; }
    /// <summary>Offset of the section's content in the module's bytes.</summary>
    public required int Offset { get; init; }
}
