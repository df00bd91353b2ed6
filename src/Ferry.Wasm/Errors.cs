namespace Ferry.Wasm;

/// <summary>Base of every error Ferry reports about a module.</summary>
public abstract class WasmException : Exception
{
    protected WasmException(string message) : base(message) { }
}

/// <summary>The bytes are not a well-formed binary module (the spec's "malformed").</summary>
public sealed class MalformedModuleException : WasmException
{
    public MalformedModuleException(string reason, int offset, string? detail = null)
        : base($"malformed module at byte 0x{offset:x}: {reason}{(detail is null ? "" : $" ({detail})")}")
    {
        Reason = reason;
        Offset = offset;
    }

    /// <summary>The spec's wording of the problem, e.g. "unexpected end", "integer too large".</summary>
    public string Reason { get; }
    /// <summary>Byte offset in the module where decoding failed.</summary>
    public int Offset { get; }
}

/// <summary>The module is well formed but fails validation (the spec's "invalid").</summary>
public sealed class InvalidModuleException : WasmException
{
    public InvalidModuleException(string reason, string where)
        : base($"invalid module: {reason} ({where})")
    {
        Reason = reason;
        Where = where;
    }

    /// <summary>The spec's wording, e.g. "type mismatch", "unknown local".</summary>
    public string Reason { get; }
    /// <summary>Where the problem is, e.g. "function 3 at byte 0x1a2".</summary>
    public string Where { get; }
}

/// <summary>The module uses a feature Ferry does not implement yet (SIMD).</summary>
public sealed class UnsupportedFeatureException : WasmException
{
    public UnsupportedFeatureException(string feature, int offset)
        : base($"not supported yet: {feature} (at byte 0x{offset:x})")
    {
        Feature = feature;
        Offset = offset;
    }

    public string Feature { get; }
    public int Offset { get; }
}
