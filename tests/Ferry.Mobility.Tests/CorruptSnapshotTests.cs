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
        version[8] = SnapshotLayout.Version + 1;
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

    /// <summary>Where each descriptor's copy flag (the field version 2 added, 0 without a copy) lies in a Resources payload.</summary>
    private static List<int> CopyFlags(byte[] resources)
    {
        var at = 0;
        int U32() => (int)BinaryPrimitives.ReadUInt32LittleEndian(resources.AsSpan((at += 4) - 4));
        void Strings(int n)
        {
            for (var i = 0; i < n; i++)
            {
                var length = U32();
                at += length;
            }
        }
        Strings(U32());
        Strings(2 * U32());
        Strings(2 * U32());
        Strings(U32());
        var flags = new List<int>();
        for (var n = U32(); n > 0; n--)
        {
            at += 4 + 3 + 2 + 8 + 8;
            Strings(1);
            at += 1 + 1 + 8 + 4;
            Strings(U32());
            at += 4;
            flags.Add(at);
            Assert.Equal(0, resources[at++]);
        }
        Assert.Equal(resources.Length, at + 8);
        return flags;
    }

    /// <summary>The snapshot with its Resources payload replaced by <paramref name="change"/>'s result (length and checksum made right) and its version set.</summary>
    private static byte[] WithResources(byte[] snapshot, Func<byte[], byte[]> change, ushort version) => WithSection(snapshot, SectionType.Resources, change, version);

    private static byte[] WithSection(byte[] snapshot, SectionType type, Func<byte[], byte[]> change, ushort version)
    {
        var at = SectionOffsets(snapshot).Single(o => snapshot[o] == (byte)type);
        var length = (int)BinaryPrimitives.ReadInt64LittleEndian(snapshot.AsSpan(at + 4));
        var payload = change(snapshot.AsSpan(at + SnapshotLayout.SectionHeaderSize, length).ToArray());
        var header = snapshot.AsSpan(at, SnapshotLayout.SectionHeaderSize).ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(4), payload.Length);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, Crc32C.Of(payload));
        var result = (byte[])[.. snapshot[..at], .. header, .. payload, .. crc, .. snapshot[(at + SnapshotLayout.SectionHeaderSize + length + 4)..]];
        BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8), version);
        return result;
    }

    /// <summary>
    /// The snapshot's Instance section with each table version 3 wrote as instantiated (count 0xFFFFFFFF, no elements)
    /// written in full, as versions 1 and 2 wrote every table: the elements a new instance of the module holds.
    /// </summary>
    private static byte[] WithTablesInFull(byte[] snapshot, byte[] module, ushort version)
    {
        using var wasi = new WasiProcess(new WasiConfiguration { Arguments = ["files"] });
        var linker = new Linker();
        wasi.Define(linker);
        var loaded = Module.Load(module);
        var instance = linker.Instantiate(new Store(), loaded);
        // Writing an element back marks its table written, so that the capture carries it in full.
        for (var t = 0u; t < loaded.TableCount; t++)
        {
            if (instance.Table(t).Size > 0) instance.Table(t)[0] = instance.Table(t)[0];
        }
        var tables = InstanceState.Capture(instance).Tables;
        return WithSection(snapshot, SectionType.Instance, payload =>
        {
            var at = 4 + 8 * (int)BinaryPrimitives.ReadUInt32LittleEndian(payload);
            var result = new List<byte>(payload[..(at + 4)]);
            at += 4;
            for (var t = 0; t < tables.Length; t++)
            {
                var count = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(at));
                at += 4;
                var elements = count == SnapshotLayout.TableAsInstantiated ? tables[t] ?? [] : payload.AsSpan(at, 8 * (int)count).ToArray().Chunk(8).Select(e => BinaryPrimitives.ReadUInt64LittleEndian(e)).ToArray();
                if (count != SnapshotLayout.TableAsInstantiated) at += 8 * (int)count;
                var bytes = new byte[4 + 8 * elements.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)elements.Length);
                for (var i = 0; i < elements.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(4 + 8 * i), elements[i]);
                result.AddRange(bytes);
            }
            result.AddRange(payload[at..]);
            return [.. result];
        }, version);
    }

    [Fact]
    public void A_version_1_snapshot_written_before_files_could_be_copied_is_still_restored_and_runs_as_the_current_one()
    {
        var (good, module) = Capture();
        Assert.Contains(SnapshotLayout.TableAsInstantiated, TableCounts(good));
        var version1 = WithResources(WithTablesInFull(good, module, version: 1), payload =>
        {
            var flags = CopyFlags(payload);
            return [.. payload.Where((_, i) => !flags.Contains(i))];
        }, version: 1);
        Assert.DoesNotContain(SnapshotLayout.TableAsInstantiated, TableCounts(version1));
        string Finish(byte[] snapshot)
        {
            var console = new MemoryStream();
            using var restored = ProcessSnapshot.Restore(new MemoryStream(snapshot), Stream.Null, console, Stream.Null, _ => module);
            Assert.Equal(ExecutionStatus.Finished, restored.Execution.Run(long.MaxValue));
            return System.Text.Encoding.UTF8.GetString(console.ToArray());
        }
        // Each run goes on from the same files: the directory as the capture left it.
        var captured = new MemoryStream();
        System.IO.Compression.ZipFile.CreateFromDirectory(_directory.FullName, captured);
        var current = Finish(good);
        Assert.NotEmpty(current);
        foreach (var entry in _directory.EnumerateFileSystemInfos()) (entry as DirectoryInfo)?.Delete(true);
        foreach (var entry in _directory.EnumerateFiles()) entry.Delete();
        captured.Position = 0;
        System.IO.Compression.ZipFile.ExtractToDirectory(captured, _directory.FullName);
        Assert.Equal(current, Finish(version1));
        var unknown = Assert.Throws<SnapshotFormatException>(() => ProcessSnapshot.Restore(new MemoryStream(WithResources(good, p => p, version: SnapshotLayout.Version + 1)), Stream.Null, Stream.Null, Stream.Null, _ => module));
        Assert.Contains($"this Ferry reads versions 1 to {SnapshotLayout.Version}", unknown.Message);
    }

    /// <summary>The element count (or as-instantiated mark) of each table in a snapshot's Instance section.</summary>
    private static List<uint> TableCounts(byte[] snapshot)
    {
        var offset = SectionOffsets(snapshot).Single(o => snapshot[o] == (byte)SectionType.Instance) + SnapshotLayout.SectionHeaderSize;
        var payload = snapshot.AsSpan(offset);
        var at = 4 + 8 * (int)BinaryPrimitives.ReadUInt32LittleEndian(payload);
        var counts = new List<uint>();
        for (var n = BinaryPrimitives.ReadUInt32LittleEndian(payload[at..]); n > 0; n--)
        {
            at += 4;
            var count = BinaryPrimitives.ReadUInt32LittleEndian(payload[at..]);
            counts.Add(count);
            if (count != SnapshotLayout.TableAsInstantiated) at += 8 * (int)count;
        }
        return counts;
    }

    [Theory]
    [InlineData(5, 10, "with 10 bytes of data")]
    [InlineData(-1, 0, "with 0 bytes of data")]
    [InlineData(SnapshotLayout.MaxCopiedFileBytes + 1, 0, "bytes at most")]
    public void A_file_copy_that_breaks_the_formats_rules_is_refused(long length, int data, string reason)
    {
        var (good, module) = Capture();
        var bad = WithResources(good, payload =>
        {
            var flag = CopyFlags(payload)[^1];
            var copy = new byte[1 + 8 + 4 + data];
            copy[0] = 1;
            BinaryPrimitives.WriteInt64LittleEndian(copy.AsSpan(1), length);
            BinaryPrimitives.WriteInt32LittleEndian(copy.AsSpan(9), data);
            return [.. payload[..flag], .. copy, .. payload[(flag + 1)..]];
        }, SnapshotLayout.Version);
        var error = Assert.Throws<SnapshotFormatException>(() => ProcessSnapshot.Restore(new MemoryStream(bad), Stream.Null, Stream.Null, Stream.Null, _ => module));
        Assert.Contains(reason, error.Message);
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
