namespace Ferry.Wasm;

/// <summary>Size limits of a table (in elements) or memory (in 64 KiB pages).</summary>
public readonly record struct Limits(uint Min, uint? Max)
{
    public override string ToString() => Max is { } max ? $"{{min {Min}, max {max}}}" : $"{{min {Min}}}";
}

public readonly record struct TableType(ValType ElementType, Limits Limits);

public readonly record struct MemoryType(Limits Limits)
{
    /// <summary>The most 64 KiB pages a 32-bit memory can have.</summary>
    public const uint MaxPages = 65536;
    public const int PageSize = 65536;
}

public readonly record struct GlobalType(ValType Type, bool Mutable);

/// <summary>The kind of an import or export.</summary>
public enum ExternKind : byte
{
    Func = 0,
    Table = 1,
    Memory = 2,
    Global = 3,
}
