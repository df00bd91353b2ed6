namespace Ferry.Wasm.Binary;

/// <summary>
/// Names the proposal after WebAssembly 2.0 that an opcode or a limits flag Ferry rejects comes from, so that the
/// error tells a user which compiler feature their module was built with (the rejection itself stays the spec's).
/// </summary>
internal static class LaterProposals
{
    private static string? OfOpcode(byte opcode) => opcode switch
    {
        0x12 or 0x13 => "return_call, from the tail-call proposal",
        0x06 or 0x07 or 0x08 or 0x09 or 0x0A or 0x18 or 0x19 or 0x1F => "from the exception-handling proposal (compiled with -fwasm-exceptions?)",
        0x14 or 0x15 or 0xD3 or 0xD4 or 0xD5 or 0xD6 => "from the typed function references proposal",
        0xFB => "from the garbage-collection proposal",
        0xFE => "an atomic instruction, from the threads proposal (compiled for wasm32-wasi-threads or with -matomics?)",
        _ => null,
    };

    private static string? OfLimitsFlag(byte flag) => flag switch
    {
        3 => "a shared memory, from the threads proposal",
        >= 4 and <= 7 => "a 64-bit memory, from the memory64 proposal",
        _ => null,
    };

    /// <summary>The spec's "illegal opcode", with the opcode and, when it has one, its proposal.</summary>
    public static MalformedModuleException IllegalOpcode(byte opcode, int offset) =>
        new("illegal opcode", offset, Detail($"0x{opcode:x2}", OfOpcode(opcode)));

    /// <summary>The spec's "integer too large" for a limits flag other than 0 and 1, with the flag and, when it has one, its proposal.</summary>
    public static MalformedModuleException LimitsFlag(byte flag, int offset) =>
        new("integer too large", offset, Detail($"limits flag {flag}", OfLimitsFlag(flag)));

    private static string Detail(string what, string? proposal) => proposal is null ? what : $"{what}: {proposal}, which Ferry does not support";
}
