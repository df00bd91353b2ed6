using System.Diagnostics;
using System.Text.Json;
using Ferry.Engine;
using Ferry.Mobility;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Bench;

/// <summary>
/// Capture and restore of the dirtier guest at several working-set sizes, dense (every 4 KiB frame written)
/// and sparse (one frame in 64), beside File.WriteAllBytes/ReadAllBytes of the whole memory in the same run.
/// Snapshots leave the module out (--no-code), so their size is the process's state alone.
/// </summary>
internal static class SnapshotBench
{
    public static int Run(string guests, string? json)
    {
        var module = Module.Load(File.ReadAllBytes(Path.Combine(guests, "dirtier.wasm")));
        var directory = Directory.CreateTempSubdirectory("ferry-snapbench-");
        var rows = new List<object>();
        Console.WriteLine($"{"working set",12} {"layout",7} {"frames",9} {"snapshot MiB",13} {"size/touched",13} {"capture ms",11} {"restore ms",11} {"write ms",9} {"read ms",8} {"capture/write",14} {"restore/read",13}");
        try
        {
            // The first case warms up the JIT and is not reported.
            foreach (var mib in new[] { 16, 64, 256, 1024 })
            {
                foreach (var (layout, stride) in new[] { ("dense", 1), ("sparse", 64) })
                {
                    Console.Error.WriteLine($"bench: dirtier {mib} MiB {layout}");
                    using var wasi = new WasiProcess(new WasiConfiguration
                    {
                        Arguments = ["dirtier", "--mib", mib.ToString(), "--touch-stride", stride.ToString(), "--writes-per-iteration", "0", "--iterations", "2000000000", "--report", "1"],
                    });
                    var store = new Store();
                    var linker = new Linker();
                    wasi.Define(linker);
                    var instance = linker.Instantiate(store, module);
                    var execution = store.Start(instance.GetFunction("_start"));
                    // Run until the first progress report: the working set is then allocated and touched.
                    var stdout = wasi.Resources.Entries().Select(e => e.Resource).OfType<Ferry.Wasi.Resources.StdioResource>().Single(r => r.Kind == Ferry.Wasi.Resources.ResourceKind.Stdout);
                    while (stdout.Sequence == 0)
                    {
                        if (execution.Run(20_000_000) != ExecutionStatus.OutOfFuel) throw new InvalidOperationException($"dirtier stopped: {execution.Trap?.Message}");
                    }
                    var memory = instance.Memory!;
                    var touched = 0L;
                    for (var frame = 0L; frame < memory.FrameCount; frame++)
                    {
                        if (memory.Frame(frame).IndexOfAnyExcept((byte)0) >= 0) touched++;
                    }

                    var file = Path.Combine(directory.FullName, "process.snap");
                    var clock = Stopwatch.StartNew();
                    using (var stream = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                    {
                        ProcessSnapshot.Capture(stream, module, instance, execution, wasi, embedCode: false);
                    }
                    var capture = clock.Elapsed.TotalMilliseconds;
                    var size = new FileInfo(file).Length;
                    clock.Restart();
                    using (var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20))
                    using (ProcessSnapshot.Restore(stream, Stream.Null, Stream.Null, Stream.Null, _ => module.Bytes.ToArray()))
                    {
                        clock.Stop();
                    }
                    var restore = clock.Elapsed.TotalMilliseconds;

                    var copy = Path.Combine(directory.FullName, "memory.bin");
                    var bytes = memory.Span.ToArray();
                    clock.Restart();
                    File.WriteAllBytes(copy, bytes);
                    var write = clock.Elapsed.TotalMilliseconds;
                    clock.Restart();
                    var read = File.ReadAllBytes(copy).Length;
                    var readMs = clock.Elapsed.TotalMilliseconds;
                    File.Delete(copy);
                    File.Delete(file);
                    _ = read;

                    var sizeOverTouched = (double)size / (touched * Ferry.Engine.Memory.LinearMemory.FrameSize);
                    if (mib == 16) continue;
                    Console.WriteLine($"{mib + " MiB",12} {layout,7} {touched,9:N0} {size / 1048576.0,13:F1} {sizeOverTouched,13:F4} {capture,11:F0} {restore,11:F0} {write,9:F0} {readMs,8:F0} {capture / write,14:F2} {restore / readMs,13:F2}");
                    rows.Add(new { mib, layout, touchedFrames = touched, snapshotBytes = size, sizeOverTouched, captureMs = capture, restoreMs = restore, writeAllBytesMs = write, readAllBytesMs = readMs, memoryBytes = bytes.Length });
                }
            }
        }
        finally
        {
            directory.Delete(true);
        }
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {json}");
        }
        return 0;
    }
}
