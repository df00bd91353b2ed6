namespace Ferry.Wasm.Binary;

/// <summary>Decodes the binary format into a <see cref="Module"/>. Implementation pending (decoder helper).</summary>
internal static class ModuleDecoder
{
    public static Module Decode(ReadOnlyMemory<byte> bytes) => throw new MalformedModuleException("decoder not written yet", 0);
}
