namespace Ferry.Wasm.Binary;

/// <summary>Reads function names from the "name" custom section. A broken name section is ignored, never an error.</summary>
internal static class NameSection
{
    private const byte FunctionNamesSubsection = 1;

    public static IReadOnlyDictionary<uint, string> ReadFunctionNames(IEnumerable<CustomSection> sections)
    {
        var names = new Dictionary<uint, string>();
        foreach (var section in sections)
        {
            if (section.Name != "name") continue;
            try
            {
                Read(section, names);
            }
            catch (MalformedModuleException)
            {
                names.Clear();
            }
        }
        return names;
    }

    private static void Read(CustomSection section, Dictionary<uint, string> names)
    {
        var r = new WasmReader(section.Content.Span, section.Offset);
        while (!r.AtEnd)
        {
            var id = r.ReadByte();
            var size = (int)r.ReadVarU32();
            var content = new WasmReader(r.ReadBytes(size), r.Offset - size);
            if (id != FunctionNamesSubsection) continue;
            var count = content.ReadVarU32();
            for (var i = 0u; i < count; i++)
            {
                var index = content.ReadVarU32();
                names[index] = content.ReadName();
            }
        }
    }
}
