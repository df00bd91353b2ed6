using Ferry.Node.Code;
using Ferry.Tests.Shared;

namespace Ferry.Node.Tests;

public sealed class CodeStoreTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("ferry-code-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void A_module_read_back_from_disk_is_served_only_while_its_file_is_a_module_that_hashes_to_its_name()
    {
        var hash = new CodeStore(_directory.FullName).Put(File.ReadAllBytes(Guests.Wasm("hello")));
        // A store opened afresh, as by a restarted node, reads it from disk.
        Assert.Equal(hash, new CodeStore(_directory.FullName).Get(hash)!.Hash);

        var file = Path.Combine(_directory.FullName, hash + ".wasm");
        File.WriteAllBytes(file, File.ReadAllBytes(Guests.Wasm("dirtier")));
        Assert.Null(new CodeStore(_directory.FullName).Get(hash));
        File.WriteAllBytes(file, [0, 0x61, 0x73, 0x6D, 9, 0, 0, 0]);
        Assert.Null(new CodeStore(_directory.FullName).Get(hash));
    }

    [Fact]
    public void A_module_fetched_as_a_hash_is_kept_only_if_its_bytes_hash_to_it()
    {
        var store = new CodeStore(_directory.FullName);
        var hello = File.ReadAllBytes(Guests.Wasm("hello"));
        var helloHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(hello));
        var dirtier = File.ReadAllBytes(Guests.Wasm("dirtier"));

        // A peer that answers with another module than the one asked for: refused, and nothing stored under either name.
        Assert.Null(store.PutExpected(dirtier, helloHash));
        Assert.Null(store.Get(helloHash));
        Assert.Empty(_directory.GetFiles());

        var kept = store.PutExpected(hello, helloHash);
        Assert.Equal(helloHash, kept!.Hash);
        Assert.Same(kept, store.Get(helloHash));
        Assert.Equal(hello, File.ReadAllBytes(Path.Combine(_directory.FullName, helloHash + ".wasm")));
    }
}
