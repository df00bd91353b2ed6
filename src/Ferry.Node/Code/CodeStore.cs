using Ferry.Wasm;

namespace Ferry.Node.Code;

/// <summary>Modules stored once per node, named by the SHA-256 of their bytes, in the node's data directory.</summary>
public sealed class CodeStore
{
    private readonly string _directory;
    private readonly Dictionary<string, Module> _loaded = [];

    public CodeStore(string directory)
    {
        _directory = directory;
        Directory.CreateDirectory(directory);
    }

    /// <summary>Decodes and stores a module; returns its hash. Throws <see cref="WasmException"/> for a bad module.</summary>
    public string Put(byte[] bytes) => Keep(Module.Load(bytes)).Hash;

    /// <summary>
    /// Stores a module fetched from a peer as <paramref name="hash"/>: null, and nothing stored, unless its bytes hash to it.
    /// The bytes are hashed once, by the module, which keeps the hash: hashed by the caller first as well, CPython's 26 MB
    /// were hashed twice in a migration's admission. Throws <see cref="WasmException"/> for a bad module.
    /// </summary>
    public Module? PutExpected(byte[] bytes, string hash)
    {
        var module = Module.Load(bytes);
        return module.Hash == hash ? Keep(module) : null;
    }

    private Module Keep(Module module)
    {
        var hash = module.Hash;
        lock (_loaded)
        {
            if (_loaded.TryGetValue(hash, out var kept)) return kept;
            var path = Path.Combine(_directory, hash + ".wasm");
            if (!File.Exists(path))
            {
                File.WriteAllBytes(path + ".partial", module.Bytes.Span);
                File.Move(path + ".partial", path, overwrite: true);
            }
            _loaded[hash] = module;
        }
        return module;
    }

    /// <summary>A stored module by hash, verified against its name when read from disk.</summary>
    public Module? Get(string hash)
    {
        lock (_loaded)
        {
            if (_loaded.TryGetValue(hash, out var module)) return module;
            var path = Path.Combine(_directory, hash + ".wasm");
            if (hash.Length != 64 || !hash.All(Uri.IsHexDigit) || !File.Exists(path)) return null;
            try
            {
                module = Module.Load(File.ReadAllBytes(path));
            }
            catch (WasmException)
            {
                return null;
            }
            // Checked through the module, which keeps the hash: hashed later, a migration's restore hashed CPython's 26 MB inside its downtime.
            if (module.Hash != hash) return null;
            _loaded[hash] = module;
            return module;
        }
    }

    public bool Contains(string hash) => Get(hash) is not null;
}
