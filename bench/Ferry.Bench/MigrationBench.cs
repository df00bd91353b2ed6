using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Ferry.Engine;
using Ferry.Engine.Memory;
using Ferry.Mobility;
using Ferry.Mobility.Hosting;
using Ferry.Mobility.Migration;
using Ferry.Mobility.Snapshots;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Bench;

/// <summary>
/// Live migration of a running dirtier over TCP on 127.0.0.1, per working set, write load and strategy, beside the
/// bounds measured on the same kind of connection in the same run: the raw transfer time of the working set (for
/// total time) and of the final dirty set plus execution state (for downtime). Each row is the median of several runs
/// by downtime; the raw rate is the best of three transfers just before that run, and the downtime bounds the best of
/// three plain transfers just after it, timed from the first write to the last byte's arrival, with the machine otherwise
/// idle (the stop's guest is held too), so the comparison errs against Ferry. Downtime runs from the stop on the source
/// until the target, go-ahead received, can run the process. Two downtime bounds, both of the final dirty set whole, as
/// the raw transfer the stop must beat, whatever Ferry sent of it ("deltas": frames it sent as their written lines):
/// "bound" sends the state and the frames with their numbers from one cache-hot buffer; "frames" sends the state from a hot buffer and then as many frames as the stop
/// carried, chosen at random (as the dirtier dirties them), from the source guest's memory into the same places of the
/// target's, 256 to a gathered write and a scattered read: the raw transfer of a dirty set from memory to memory, with no
/// protocol and no checksum. "x frames" is the median over the runs of each run's downtime over its own frames bound.
/// "crc ms" is the frames bound with the CRC-32C the protocol puts on every message computed on each side, as Ferry does
/// (the sender after each write, the receiver after each read), and "x crc" the median of each run's downtime over it:
/// what the checksum costs on this machine, beside the overhead of Ferry's own.
/// "mem MB/s" is the working-set transfer sent from the guest's memory instead of a hot buffer. For stop-copy, "x raw" is
/// the median over the runs of each run's data rate (frames over downtime) over the raw rate measured just before it: one
/// run's raw rate moves by a factor of three from one run to the next here, so it is paired with its own run, as each
/// downtime is with its own frames bound.
/// </summary>
internal static class MigrationBench
{
    private static readonly (string Name, string[] Arguments)[] Loads =
    [
        ("idle", ["--writes-per-iteration", "0", "--sleep-us", "10000"]),
        ("moderate", ["--writes-per-iteration", "100", "--sleep-us", "1000"]),
        ("heavy", ["--writes-per-iteration", "2000"]),
    ];

    private static readonly MigrationStrategy[] Strategies = [MigrationStrategy.StopAndCopy, MigrationStrategy.PreCopy, MigrationStrategy.PostCopy, MigrationStrategy.Hybrid];

    public static int Run(string guests, string? json, int[]? sizes, string[]? loads, string[]? strategies, int repeat, bool wholeFrames)
    {
        var unknown = (loads ?? []).Where(l => !Loads.Any(known => known.Name == l)).Concat((strategies ?? []).Where(s => !Strategies.Any(known => Name(known) == s))).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"bench: unknown load or strategy: {string.Join(", ", unknown)} (loads: {string.Join(", ", Loads.Select(l => l.Name))}; strategies: {string.Join(", ", Strategies.Select(Name))})");
            return 2;
        }
        var bytes = File.ReadAllBytes(Path.Combine(guests, "dirtier.wasm"));
        var rows = new List<Dictionary<string, object?>>();
        Console.WriteLine($"{"MiB",5} {"load",-9} {"strategy",-10} {"total ms",9} {"bound ms",9} {"downtime ms",12} {"bound ms",9} {"frames ms",10} {"x frames",9} {"crc ms",8} {"x crc",6} {"MB sent",9} {"deltas",7} {"rounds",7} {"faults",7} {"blocked ms",11} {"twice",6} {"data MB/s",10} {"raw MB/s",9} {"x raw",6} {"mem MB/s",9}");
        // Warm-up (not reported): the JIT compiles the migration path once, as a node's own warm-up does when it starts.
        MigrationWarmUp.RunAsync().GetAwaiter().GetResult();
        foreach (var strategy in new[] { MigrationStrategy.StopAndCopy, MigrationStrategy.PreCopy, MigrationStrategy.PostCopy })
            Migrate(bytes, 16, Loads[1].Arguments, strategy);
        foreach (var mib in sizes ?? [64, 256, 1024])
        {
            // The first migration of a size is not reported either: on a VM the first use of that much fresh memory (GC regions,
            // pages the host reclaimed) costs about 10 µs per 4 KiB page, three times the transfer itself.
            Console.Error.WriteLine($"bench: dirtier {mib} MiB, warm-up");
            Migrate(bytes, mib, Loads[1].Arguments, MigrationStrategy.StopAndCopy);
            foreach (var (load, arguments) in Loads)
            {
                if (loads is not null && !loads.Contains(load)) continue;
                foreach (var strategy in Strategies)
                {
                    if (strategies is not null && !strategies.Contains(Name(strategy))) continue;
                    // The median run by downtime: this machine's noise (page faults, neighbours) moves single runs by a factor of three.
                    var runs = new List<(MigrationReport Report, double Raw, double RawFromMemory, double StopBound, double FramesBound, double ChecksummedBound)>();
                    for (var run = 1; run <= repeat; run++)
                    {
                        Console.Error.Write($"bench: dirtier {mib} MiB {load} {strategy}, run {run} of {repeat}: ");
                        runs.Add(Migrate(bytes, mib, arguments, strategy, wholeFrames));
                        var (done, doneRaw, _, doneBound, doneFramesBound, doneChecksummedBound) = runs[^1];
                        Console.Error.WriteLine($"downtime {done.Downtime.TotalMilliseconds:N2} ms, bound {doneBound * 1000:N2} ms, frames bound {doneFramesBound * 1000:N2} ms ({done.StopFrames} frames, {done.StopDeltaFrames} as deltas), with checksums {doneChecksummedBound * 1000:N2} ms, raw {doneRaw / 1e6:N0} MB/s");
                    }
                    // Each run's downtime against its own frames bound, since the final dirty set differs from run to run.
                    var ratio = Median(runs.Select(r => r.Report.Downtime.TotalSeconds / r.FramesBound));
                    var overChecksummed = Median(runs.Select(r => r.Report.Downtime.TotalSeconds / r.ChecksummedBound));
                    var overRaw = Median(runs.Select(r => DataRate(r.Report) / r.Raw));
                    runs.Sort((a, b) => a.Report.Downtime.CompareTo(b.Report.Downtime));
                    var (report, raw, rawFromMemory, stopBound, framesBound, checksummedBound) = runs[runs.Count / 2];
                    var totalBound = (mib << 20) / raw * 1000;
                    var downtimeBound = stopBound * 1000;
                    var downtimeFramesBound = framesBound * 1000;
                    var stopCopy = strategy == MigrationStrategy.StopAndCopy;
                    var dataRate = stopCopy ? DataRate(report) / 1e6 : double.NaN;
                    Console.WriteLine($"{mib,5} {load,-9} {Name(strategy),-10} {report.Total.TotalMilliseconds,9:N1} {totalBound,9:N1} {report.Downtime.TotalMilliseconds,12:N2} {downtimeBound,9:N2} {downtimeFramesBound,10:N2} {ratio,9:N2} {checksummedBound * 1000,8:N2} {overChecksummed,6:N2} {report.BytesSent / 1e6,9:N1} {report.StopDeltaFrames,7} {report.Rounds.Count,7} {report.PostCopyFaults,7} {report.PostCopyBlocked?.TotalMilliseconds,11:N1} {report.FramesSentTwice,6} {(double.IsNaN(dataRate) ? "-" : dataRate.ToString("N0")),10} {raw / 1e6,9:N0} {(stopCopy ? overRaw.ToString("N2") : "-"),6} {rawFromMemory / 1e6,9:N0}");
                    rows.Add(new()
                    {
                        ["mib"] = mib, ["load"] = load, ["strategy"] = Name(strategy),
                        ["totalMs"] = report.Total.TotalMilliseconds, ["totalBoundMs"] = totalBound,
                        ["downtimeMs"] = report.Downtime.TotalMilliseconds, ["downtimeBoundMs"] = downtimeBound, ["downtimeFramesBoundMs"] = downtimeFramesBound, ["downtimeOverFramesBound"] = ratio,
                        ["downtimeChecksummedBoundMs"] = checksummedBound * 1000, ["downtimeOverChecksummedBound"] = overChecksummed,
                        ["bytesSent"] = report.BytesSent, ["rounds"] = report.Rounds.Count, ["stopFrames"] = report.StopFrames, ["stopDeltaFrames"] = report.StopDeltaFrames,
                        ["postCopyFaults"] = report.PostCopyFaults, ["postCopyBlockedMs"] = report.PostCopyBlocked?.TotalMilliseconds,
                        ["framesSentTwice"] = report.FramesSentTwice, ["rawMBps"] = raw / 1e6, ["rawFromMemoryMBps"] = rawFromMemory / 1e6,
                        ["stopCopyDataMBps"] = double.IsNaN(dataRate) ? 0 : dataRate, ["stopCopyDataOverRaw"] = stopCopy ? overRaw : null, ["runs"] = repeat,
                    });
                }
            }
        }
        if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>The middle value (the upper of the two middle ones for an even count), as a row's median run is chosen.</summary>
    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    /// <summary>Bytes per second of memory frames a stop-and-copy moved: its frames over its downtime.</summary>
    private static double DataRate(MigrationReport report) => report.StopFrames * 4096.0 / report.Downtime.TotalSeconds;

    /// <summary>Bytes the downtime must carry: the execution state, and for stop-copy and pre-copy the final frames with their numbers.</summary>
    private static long StopBytes(MigrationReport report, MigrationStrategy strategy) =>
        strategy is MigrationStrategy.PostCopy or MigrationStrategy.Hybrid ? report.StateBytes : report.StopFrames * (4 + 4096) + report.StateBytes;

    private static string Name(MigrationStrategy s) => s switch
    {
        MigrationStrategy.StopAndCopy => "stop-copy",
        MigrationStrategy.PreCopy => "pre-copy",
        MigrationStrategy.PostCopy => "post-copy",
        _ => "hybrid",
    };

    private static (TcpClient Client, TcpClient Server) Connection()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient { NoDelay = true };
        var accept = listener.AcceptTcpClientAsync();
        client.Connect(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var server = accept.GetAwaiter().GetResult();
        server.NoDelay = true;
        listener.Stop();
        return (client, server);
    }

    /// <summary>
    /// Seconds a plain loopback TCP connection takes to carry <paramref name="bytes"/> from a cache-hot buffer in 1 MiB writes,
    /// best of three.
    /// </summary>
    private static double RawTime(long bytes)
    {
        var buffer = new byte[1 << 20];
        Random.Shared.NextBytes(buffer);
        var sink = new byte[1 << 20];
        return BestTransferTime(() => (
            client =>
            {
                var stream = client.GetStream();
                for (long sent = 0; sent < bytes; sent += buffer.Length) stream.Write(buffer.AsSpan(0, (int)Math.Min(buffer.Length, bytes - sent)));
            },
            server =>
            {
                var stream = server.GetStream();
                for (long total = 0; total < bytes;) total += stream.Read(sink);
            }));
    }

    /// <summary>
    /// The best of three transfers, each over a new loopback connection and set up by <paramref name="attempt"/>: from the
    /// first write until the reader, already waiting on its own thread, has the last byte.
    /// </summary>
    private static double BestTransferTime(Func<(Action<TcpClient> Send, Action<TcpClient> Receive)> attempt)
    {
        var best = double.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var (send, receive) = attempt();
            var (client, server) = Connection();
            using (client)
            using (server)
            {
                using var waiting = new ManualResetEventSlim();
                long arrived = 0;
                var reader = new Thread(() =>
                {
                    waiting.Set();
                    receive(server);
                    arrived = Stopwatch.GetTimestamp();
                });
                reader.Start();
                waiting.Wait();
                var start = Stopwatch.GetTimestamp();
                send(client);
                reader.Join();
                best = Math.Min(best, Stopwatch.GetElapsedTime(start, arrived).TotalSeconds);
            }
        }
        return best;
    }

    /// <summary>
    /// Bytes per second that a plain loopback TCP connection carries, 1 MiB writes, best of three: from one cache-hot
    /// buffer, or with <paramref name="from"/> (<paramref name="bytes"/> long) from those bytes in turn: a guest's memory, cache and TLB misses included.
    /// </summary>
    private static double RawRate(long bytes, ReadOnlyMemory<byte>? from = null)
    {
        var best = 0.0;
        var buffer = new byte[1 << 20];
        Random.Shared.NextBytes(buffer);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var (client, server) = Connection();
            using (client)
            using (server)
            {
                var reader = Task.Run(() =>
                {
                    var sink = new byte[1 << 20];
                    var stream = server.GetStream();
                    long total = 0;
                    while (total < bytes) total += stream.Read(sink);
                });
                var clock = Stopwatch.StartNew();
                var stream = client.GetStream();
                for (long sent = 0; sent < bytes; sent += buffer.Length)
                {
                    if (from is { } source) stream.Write(source.Slice((int)sent, buffer.Length).Span);
                    else stream.Write(buffer);
                }
                reader.Wait();
                best = Math.Max(best, bytes / clock.Elapsed.TotalSeconds);
            }
        }
        return best;
    }

    private static long TouchedFrames(LinearMemory? memory)
    {
        if (memory is null) return 0;
        long touched = 0;
        for (long frame = 0; frame < memory.FrameCount; frame++)
        {
            if (memory.Frame(frame).IndexOfAnyExcept((byte)0) >= 0) touched++;
        }
        return touched;
    }

    /// <summary>
    /// Seconds a plain loopback TCP connection takes to carry <paramref name="stateBytes"/> from a cache-hot buffer and then
    /// <paramref name="frames"/> random frames of <paramref name="from"/> into the same frames of <paramref name="to"/>,
    /// 256 frames to a gathered write and to a scattered read, best of three (a new set of frames each time); with
    /// <paramref name="checksummed"/>, each side computes the CRC-32C of every write or read after it, as the protocol's sides do.
    /// </summary>
    private static double FramesRawTime(LinearMemory from, LinearMemory to, long frames, long stateBytes, bool checksummed)
    {
        var state = new byte[stateBytes];
        Random.Shared.NextBytes(state);
        var sink = new byte[stateBytes];
        return BestTransferTime(() =>
        {
            var chosen = RandomFrames(Math.Min(from.FrameCount, to.FrameCount), frames);
            return (client => Transfer(client.Client, state, from, chosen, receive: false, checksummed), server => Transfer(server.Client, sink, to, chosen, receive: true, checksummed));
        });
    }

    /// <summary>
    /// Sends or receives <paramref name="state"/>, then the frames <paramref name="chosen"/> of <paramref name="memory"/> in
    /// groups of 256, each group one call (resumed after a partial one), each checksummed after its call when <paramref name="checksummed"/>.
    /// </summary>
    private static void Transfer(Socket socket, byte[] state, LinearMemory memory, int[] chosen, bool receive, bool checksummed)
    {
        var crc = new Crc32C();
        var segments = new List<ArraySegment<byte>>();
        void MoveGroup()
        {
            var group = checksummed ? segments.ToArray() : [];
            Move(socket, segments, receive);
            foreach (var piece in group) crc.Append(piece);
        }
        if (state.Length > 0) segments.Add(state);
        MoveGroup();
        for (var at = 0; at < chosen.Length; at += 256)
        {
            for (var i = at; i < Math.Min(at + 256, chosen.Length); i++)
            {
                MemoryMarshal.TryGetArray(memory.FramesAsMemory(chosen[i], 1), out var frame);
                segments.Add(frame);
            }
            MoveGroup();
        }
        Interlocked.Add(ref Checksums, crc.Value);
    }

    /// <summary>The checksums <see cref="Transfer"/> computed, kept so that computing them is not optimized away.</summary>
    private static uint Checksums;

    /// <summary>One gathered write or scattered read of <paramref name="segments"/>, resumed until all of them are done (it empties the list).</summary>
    private static void Move(Socket socket, List<ArraySegment<byte>> segments, bool receive)
    {
        while (segments.Count > 0)
        {
            var done = receive ? socket.Receive(segments) : socket.Send(segments);
            if (done == 0) throw new IOException("the connection closed during the transfer");
            while (segments.Count > 0 && done >= segments[0].Count)
            {
                done -= segments[0].Count;
                segments.RemoveAt(0);
            }
            if (done > 0) segments[0] = segments[0][done..];
        }
    }

    /// <summary><paramref name="frames"/> distinct frame numbers below <paramref name="frameCount"/>, at random, in ascending order (as a dirty bitmap lists them).</summary>
    private static int[] RandomFrames(long frameCount, long frames)
    {
        var all = new int[frameCount];
        for (var i = 0; i < all.Length; i++) all[i] = i;
        Random.Shared.Shuffle(all);
        var chosen = all[..(int)Math.Min(frames, frameCount)];
        Array.Sort(chosen);
        return chosen;
    }

    /// <summary>One migration, and the raw rate of a plain connection measured just before it, in the same state of the machine.</summary>
    private static (MigrationReport Report, double Raw, double RawFromMemory, double StopBound, double FramesBound, double ChecksummedBound) Migrate(byte[] bytes, int mib, string[] load, MigrationStrategy strategy, bool wholeFrames = false)
    {
        var module = Module.Load(bytes);
        var wasi = new WasiProcess(new WasiConfiguration
        {
            Arguments = ["dirtier", "--mib", mib.ToString(), "--seconds", "3600", .. load],
            SuspendInsteadOfBlocking = true,
        });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, module);
        var source = new SlicedProcess(module, instance, store.Start(instance.GetFunction("_start")), wasi, sliceFuel: 1_000_000);
        source.Start();
        // The working set is allocated and every frame of it written before the migration starts (calloc clears it first,
        // which takes the interpreter longer than the allocation: waiting on the size alone left heavy runs mostly zero).
        while (TouchedFrames(instance.Memory) < (long)mib << 20 >> LinearMemory.FrameShift) Thread.Sleep(20);
        Thread.Sleep(100);
        var raw = RawRate((long)mib << 20);
        var rawFromMemory = RawRate((long)mib << 20, instance.Memory!.FramesAsMemory(0, mib << 20 >> LinearMemory.FrameShift));
        var (client, server) = Connection();
        using (client)
        using (server)
        {
            var target = Task.Run(() => MigrationTarget.ReceiveAsync(server.GetStream(),
                _ => Task.FromResult(Admission.Admit(module)),
                (image, received) => ProcessSnapshot.Restore(image, Stream.Null, Stream.Null, Stream.Null, _ => bytes, suspendInsteadOfBlocking: true, received)));
            var migration = Task.Run(() => MigrationSource.MigrateAsync(client.GetStream(), source, new MigrationOptions { Strategy = strategy, StopDeltas = !wholeFrames }));
            var result = target.GetAwaiter().GetResult();
            // The moved process runs as soon as it is activated: for post-copy, while the source still pushes, faulting on absent frames.
            var moved = SlicedProcess.FromRestored(result.Process!, result.Pager);
            moved.Start();
            var report = migration.GetAwaiter().GetResult();
            result.Pager?.Completion.GetAwaiter().GetResult();
            moved.GiveUp(Guid.Empty);
            moved.Completion.GetAwaiter().GetResult();
            var framesBound = FramesRawTime(instance.Memory!, result.Process!.Instance.Memory!, report.StopFrames, report.StateBytes, checksummed: false);
            var checksummedBound = FramesRawTime(instance.Memory!, result.Process!.Instance.Memory!, report.StopFrames, report.StateBytes, checksummed: true);
            result.Process!.Dispose();
            wasi.Dispose();
            // Downtime end to end, on the one clock both ends share here: until the target can run the process, not until the source sent the go-ahead.
            return (report with { Downtime = Stopwatch.GetElapsedTime(report.StoppedAt, result.ActivatedAt) }, raw, rawFromMemory, RawTime(StopBytes(report, strategy)), framesBound, checksummedBound);
        }
    }
}
