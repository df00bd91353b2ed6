using System.Security.Cryptography;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm;

/// <summary>
/// A decoded WebAssembly module: the code segment of a Ferry process. Index spaces follow the spec:
/// imported entities come first, then the module's own definitions.
/// </summary>
public sealed class Module
{
    public required ReadOnlyMemory<byte> Bytes { get; init; }
    public required FuncType[] Types { get; init; }
    public required Import[] Imports { get; init; }
    /// <summary>Type index of each defined (non-imported) function.</summary>
    public required uint[] FunctionTypeIndices { get; init; }
    public required TableType[] Tables { get; init; }
    public required MemoryType[] Memories { get; init; }
    public required Global[] Globals { get; init; }
    public required Export[] Exports { get; init; }
    public required uint? StartFunction { get; init; }
    public required ElementSegment[] Elements { get; init; }
    /// <summary>The data count section's value, when present.</summary>
    public required uint? DataCount { get; init; }
    public required FunctionBody[] Codes { get; init; }
    public required DataSegment[] Data { get; init; }
    public required CustomSection[] CustomSections { get; init; }
    /// <summary>Function names from the "name" custom section; empty when absent or unreadable.</summary>
    public required IReadOnlyDictionary<uint, string> FunctionNames { get; init; }

    public int ImportedFunctionCount { get; init; }
    public int ImportedTableCount { get; init; }
    public int ImportedMemoryCount { get; init; }
    public int ImportedGlobalCount { get; init; }

    public int FunctionCount => ImportedFunctionCount + FunctionTypeIndices.Length;
    public int TableCount => ImportedTableCount + Tables.Length;
    public int MemoryCount => ImportedMemoryCount + Memories.Length;
    public int GlobalCount => ImportedGlobalCount + Globals.Length;

    private string? _hash;

    /// <summary>The module's identity: lowercase hex SHA-256 of its bytes.</summary>
    public string Hash => _hash ??= Convert.ToHexStringLower(SHA256.HashData(Bytes.Span));

    /// <summary>Decodes a binary module. Throws <see cref="MalformedModuleException"/>; does not validate.</summary>
    public static Module Decode(ReadOnlyMemory<byte> bytes) => ModuleDecoder.Decode(bytes);

    /// <summary>Decodes and validates. Throws <see cref="MalformedModuleException"/> or <see cref="InvalidModuleException"/>.</summary>
    public static Module Load(ReadOnlyMemory<byte> bytes)
    {
        var module = ModuleDecoder.Decode(bytes);
        Validator.Validate(module);
        return module;
    }

    public FuncType FunctionType(uint functionIndex)
    {
        if (functionIndex < ImportedFunctionCount)
        {
            var seen = 0u;
            foreach (var import in Imports)
            {
                if (import.Kind != ExternKind.Func) continue;
                if (seen++ == functionIndex) return Types[import.TypeIndex];
            }
        }
        return Types[FunctionTypeIndices[functionIndex - ImportedFunctionCount]];
    }

    public string? FunctionName(uint functionIndex) => FunctionNames.TryGetValue(functionIndex, out var name) ? name : null;
}
