using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>A table of references in slot encoding (0 is null).</summary>
public sealed class TableInstance
{
    internal ulong[] Elements;
    private readonly uint _max;

    /// <summary>
    /// Whether anything but instantiation wrote the table (table.set, .grow, .fill, .copy into it, .init, the host, a
    /// restore): a snapshot carries only such tables' elements, since instantiating the module again gives the others.
    /// </summary>
    internal bool Written;

    internal TableInstance(TableType type, ulong initial, uint maxElementsAllowed)
    {
        Type = type;
        _max = Math.Min(type.Limits.Max ?? uint.MaxValue, maxElementsAllowed);
        Elements = new ulong[type.Limits.Min];
        if (initial != 0) Array.Fill(Elements, initial);
    }

    public TableType Type { get; private set; }
    public uint Size => (uint)Elements.Length;

    public Value this[uint index]
    {
        get => index < Elements.Length ? new Value(Type.ElementType, Elements[index]) : throw new TrapException(TrapKind.OutOfBoundsTableAccess);
        set
        {
            if (index >= Elements.Length) throw new TrapException(TrapKind.OutOfBoundsTableAccess);
            if (value.Type != Type.ElementType) throw new ArgumentException($"expected {Type.ElementType.Name()}");
            Elements[index] = value.Bits;
            Written = true;
        }
    }

    /// <summary>table.grow: returns the old size, or -1.</summary>
    public int Grow(uint delta, ulong initial)
    {
        var old = (uint)Elements.Length;
        var size = (ulong)old + delta;
        if (size > _max || size > (ulong)Array.MaxLength) return -1;
        if (delta == 0) return (int)old;
        Written = true;
        var grown = new ulong[size];
        Elements.CopyTo(grown, 0);
        if (initial != 0) Array.Fill(grown, initial, (int)old, (int)delta);
        Elements = grown;
        Type = Type with { Limits = Type.Limits with { Min = (uint)size } };
        return (int)old;
    }
}
