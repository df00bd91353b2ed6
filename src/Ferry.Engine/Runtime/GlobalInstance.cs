using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>A global variable, shared by every instance that imports it.</summary>
public sealed class GlobalInstance
{
    /// <summary>The value in slot encoding (see <see cref="Engine.Value"/>).</summary>
    internal ulong Bits;

    internal GlobalInstance(GlobalType type, ulong bits)
    {
        Type = type;
        Bits = bits;
    }

    public GlobalType Type { get; }

    public Value Value
    {
        get => new(Type.Type, Bits);
        set
        {
            if (!Type.Mutable) throw new InvalidOperationException("global is immutable");
            if (value.Type != Type.Type) throw new ArgumentException($"expected a {Type.Type.Name()} value, got {value.Type.Name()}");
            Bits = value.Bits;
        }
    }
}
