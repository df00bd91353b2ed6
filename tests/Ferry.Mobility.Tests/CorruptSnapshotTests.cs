using System.Buffers.Binary;
using Ferry.Engine;
using Ferry.Mobility.Snapshots;
using Ferry.Tests.Shared;
using Ferry.Wasi;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;
using Xunit.Abstractions;

namespace Ferry.Mobility.Tests;

/// <summary>Invariant 4 for snapshots: every corrupt snapshot is refused with a clear error before any guest code runs.</summary>
public sealed class CorruptSnapshotTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("ferry-corrupt-");

    public void Dispose() => _directory.Delete(true);

    /// <summary>The files guest saved mid-run, with its preopen in a temp directory; also the module bytes.</summary>
    private (byte[] Snapshot, byte[] Module) Capture()
    {
        var module = File.ReadAllBytes(Guests.Wasm("files"));
        using var wasi = new WasiProcess(new WasiConfiguration
        {
            Arguments = ["files", "/data"],
            Preopens = [new Preopen(_directory.FullName, "/data")],
        });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var loaded = Module.Load(module);
        var instance = linker.Instantiate(store, loaded);
        var execution = store.Start(instance.GetFunction("_start"));
        Assert.Equal(ExecutionStatus.OutOfFuel, execution.Run(300_000));
        var stream = new MemoryStream();
        ProcessSnapshot.Capture(stream, loaded, instance, execution, wasi, embedCode: false);
        return (stream.ToArray(), module);
    }

    private static IEnumerable<(string Kind, byte[] Bytes)> Corruptions(byte[] good, byte[] module)
    {
        var random = new Random(4242);
        for (var length = 0; length < good.Length; length += Math.Max(1, good.Length / 3000)) yield return ("truncated", good[..length]);
        for (var i = 0; i < 5000; i++)
        {
            var bytes = (byte[])good.Clone();
            bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
            yield return ("bit flip", bytes);
        }
        for (var i = 0; i < 2000; i++)
        {
            var bytes = (byte[])good.Clone();
            var at = random.Next(bytes.Length - 4);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(at), random.Next());
            yield return ("overwritten word", bytes);
        }
        var version = (byte[])good.Clone();
        version[8] = 2;
        yield return ("wrong version", version);
        var sections = SectionOffsets(good);
        foreach (var offset in sections)
        {
            foreach (var length in new[] { long.MaxValue, -1L, 1L << 40, (long)good.Length })
            {
                var bytes = (byte[])good.Clone();
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(offset + 4), length);
                yield return ("oversized length", bytes);
            }
        }
        for (var i = 0; i + 1 < sections.Count - 1; i++)
        {
            var first = good.AsSpan(sections[i], sections[i + 1] - sections[i]).ToArray();
            var secondEnd = i + 2 < sections.Count ? sections[i + 2] : good.Length;
            var second = good.AsSpan(sections[i + 1], secondEnd - sections[i + 1]).ToArray();
            yield return ("reordered sections", [.. good[..sections[i]], .. second, .. first, .. good[secondEnd..]]);
        }
        yield return ("trailing bytes", [.. good, 0]);
        _ = module;
    }

    private static List<int> SectionOffsets(byte[] snapshot)
    {
        var offsets = new List<int>();
        for (var at = 12; at < snapshot.Length;)
        {
            offsets.Add(at);
            at += SnapshotLayout.SectionHeaderSize + (int)BinaryPrimitives.ReadInt64LittleEndian(snapshot.AsSpan(at + 4)) + 4;
        }
        return offsets;
    }

    [Fact]
    public void More_than_10000_corrupt_snapshots_are_each_refused_with_a_format_error_and_nothing_is_written()
    {
        var (good, module) = Capture();
        var before = Directory.EnumerateFileSystemEntries(_directory.FullName, "*", SearchOption.AllDirectories).Order().ToArray();
        using (var restored = ProcessSnapshot.Restore(new MemoryStream(good), Stream.Null, Stream.Null, Stream.Null, _ => module))
        {
            Assert.Equal(ExecutionStatus.Paused, restored.Execution.Status);
        }
        var counts = new Dictionary<string, int>();
        var slowest = TimeSpan.Zero;
        foreach (var (kind, bytes) in Corruptions(good, module))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var error = Record.Exception(() => ProcessSnapshot.Restore(new MemoryStream(bytes), Stream.Null, Stream.Null, Stream.Null, _ => module).Dispose());
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            Assert.True(error is SnapshotFormatException, $"{kind}: {(error is null ? "accepted" : $"{error.GetType().Name}: {error.Message}")}");
            counts[kind] = counts.GetValueOrDefault(kind) + 1;
        }
        var wrongModule = Record.Exception(() => ProcessSnapshot.Restore(new MemoryStream(good), Stream.Null, Stream.Null, Stream.Null, _ => File.ReadAllBytes(Guests.Wasm("hello"))));
        Assert.IsType<SnapshotFormatException>(wrongModule);
        Assert.Contains("SHA-256", wrongModule.Message);
        var total = counts.Values.Sum() + 1;
        output.WriteLine($"{total} corrupt snapshots refused ({string.Join(", ", counts.Select(c => $"{c.Value} {c.Key}"))}, 1 wrong module); slowest {slowest.TotalMilliseconds:F1} ms");
        Assert.True(total >= 10_000, $"only {total} corruptions");
        Assert.True(slowest < TimeSpan.FromSeconds(1));
        Assert.Equal(before, Directory.EnumerateFileSystemEntries(_directory.FullName, "*", SearchOption.AllDirectories).Order().ToArray());
    }

    [Fact]
    public void A_host_policy_that_will_not_grant_the_snapshots_directory_refuses_the_restore_and_one_that_will_restores_it()
    {
        var (good, module) = Capture();
        var asked = new List<string>();
        var refused = Assert.Throws<RestoreException>(() => ProcessSnapshot.Restore(new MemoryStream(good), Stream.Null, Stream.Null, Stream.Null, _ => module,
            refuseResources: resources =>
            {
                asked.AddRange(resources.Preopens.Select(p => p.HostPath));
                return "not this directory";
            }));
        Assert.Equal([_directory.FullName], asked);
        Assert.Contains("this host will not grant the process's resources: not this directory", refused.Message);

        using var restored = ProcessSnapshot.Restore(new MemoryStream(good), Stream.Null, Stream.Null, Stream.Null, _ => module, refuseResources: _ => null);
        Assert.Equal(_directory.FullName, Assert.Single(restored.Wasi.Configuration.Preopens).HostPath);
    }

    [Fact]
    public void A_module_the_reader_already_holds_is_not_fetched_again_while_any_other_is_fetched_and_checked()
    {
        var (good, module) = Capture();
        var hash = Module.Load(module).Hash;
        var fetched = 0;
        var held = new SnapshotReader(new MemoryStream(good)).ReadState(_ => { fetched++; return module; }, heldModuleHash: hash);
        Assert.Equal(0, fetched);
        Assert.Equal(hash, held.Header.ModuleHash);
        Assert.True(held.Code.IsEmpty);

        var other = Module.Load(File.ReadAllBytes(Guests.Wasm("hello"))).Hash;
        var wrong = Assert.Throws<SnapshotFormatException>(() => new SnapshotReader(new MemoryStream(good)).ReadState(_ => { fetched++; return File.ReadAllBytes(Guests.Wasm("hello")); }, heldModuleHash: other));
        Assert.Equal(1, fetched);
        Assert.Contains("SHA-256", wrong.Message);
    }

    [Fact]
    public void Resuming_a_corrupt_snapshot_exits_2_with_a_clear_message_and_runs_no_guest_code()
    {
        var (good, _) = Capture();
        var file = Path.Combine(_directory.FullName, "bad.snap");
        var bytes = (byte[])good.Clone();
        bytes[^100] ^= 0xFF;
        File.WriteAllBytes(file, bytes);
        File.Copy(Guests.Wasm("files"), Path.Combine(_directory.FullName, "files.wasm"));
        var result = Guests.Ferry(["resume", file]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("fails its checksum", result.Stderr);
        Assert.Empty(result.Stdout);
    }
}
