using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ferry.Engine;
using Ferry.Wasm;

namespace Ferry.Bench;

/// <summary>
/// Compute kernels (guests/kernels/*.c) run three ways in one session: the native gcc -O2 build, Node.js
/// running the same .wasm, and Ferry calling the module's run export. Each: one warm-up, best of three.
/// </summary>
internal static class KernelBench
{
    private sealed record Kernel(string Name, uint N);

    private sealed record Row(string Kernel, uint N, double NativeMs, double? NodeMs, double FerryMs, uint Result)
    {
        public double FerryOverNative => FerryMs / NativeMs;
        public double? FerryOverNode => NodeMs is { } node ? FerryMs / node : null;
    }

    private static readonly Kernel[] Kernels =
    [
        new("fib", 36), new("loops", 30_000), new("sieve", 10), new("matmul", 30),
        new("memcpy", 3_000), new("hashtable", 300), new("quicksort", 5),
    ];

    public static int Run(string[] args)
    {
        string? json = null, filter = null;
        var programs = false;
        var snapshots = false;
        var migration = false;
        int[]? sizes = null;
        string[]? loads = null, strategies = null;
        var repeat = 3;
        var weak = false;
        var wholeFrames = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json" when i + 1 < args.Length: json = args[++i]; break;
                case "--filter" when i + 1 < args.Length: filter = args[++i]; break;
                case "--programs": programs = true; break;
                case "--snapshots": snapshots = true; break;
                case "--weak-mobility": weak = true; break;
                case "--migration": migration = true; break;
                case "--sizes" when i + 1 < args.Length: sizes = [.. args[++i].Split(',').Select(int.Parse)]; break;
                case "--loads" when i + 1 < args.Length: loads = args[++i].Split(','); break;
                case "--strategies" when i + 1 < args.Length: strategies = args[++i].Split(','); break;
                case "--whole-frames": wholeFrames = true; break;
                case "--repeat" when i + 1 < args.Length: repeat = Math.Max(1, int.Parse(args[++i])); break;
                default:
                    Console.Error.WriteLine("usage: Ferry.Bench [--programs | --snapshots | --weak-mobility | --migration [--sizes MIB,...] [--loads idle,moderate,heavy] [--strategies stop-copy,pre-copy,post-copy,hybrid] [--repeat N] [--whole-frames]] [--filter NAME] [--json FILE]");
                    Console.Error.WriteLine("  default: kernels called in-process; --programs: whole programs through `ferry run`, and 1 GiB of I/O;");
                    Console.Error.WriteLine("  --snapshots: capture and restore of the dirtier guest at 64 MiB, 256 MiB and 1 GiB;");
                    Console.Error.WriteLine("  --migration: live migration of a running dirtier (64 MiB, 256 MiB, 1 GiB; idle, moderate, heavy) per strategy, vs raw TCP; each row the median of N runs (3);");
                    Console.Error.WriteLine("    --whole-frames: pre-copy's stop sends dirtied frames whole, not as their changed lines");
                    Console.Error.WriteLine("  --weak-mobility: a query over 256 MiB on node b asked at node a, code shipped vs data copied");
                    return 2;
            }
        }
        var guests = FindGuests();
        if (guests is null)
        {
            Console.Error.WriteLine("bench: guests/out/kernels not found: run guests/build.sh first (needs clang-14, lld-14, gcc)");
            return 2;
        }
        if (programs) return ProgramBench.Run(guests, json);
        if (snapshots) return SnapshotBench.Run(guests, json);
        if (migration) return MigrationBench.Run(guests, json, sizes, loads, strategies, repeat, wholeFrames);
        if (weak) return WeakMobilityBench.Run(guests, json).GetAwaiter().GetResult();
        var node = HasNode();
        Console.WriteLine($"machine: {CpuModel()}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, node {(node ? NodeVersion() : "missing: column skipped")}");
        var rows = new List<Row>();
        foreach (var kernel in Kernels)
        {
            if (filter is not null && !kernel.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)) continue;
            Console.Error.Write($"bench: {kernel.Name}(n={kernel.N}): native");
            var (nativeResult, nativeMs) = Measure(Path.Combine(guests, "native", "kernel-" + kernel.Name), [kernel.N.ToString(CultureInfo.InvariantCulture)]);
            var wasm = Path.Combine(guests, "kernels", kernel.Name + ".wasm");
            double? nodeMs = null;
            if (node)
            {
                Console.Error.Write(", node");
                var (nodeResult, ms) = Measure("node", [Path.Combine(AppContext.BaseDirectory, "node", "run-kernel.mjs"), wasm, kernel.N.ToString(CultureInfo.InvariantCulture)]);
                Check(kernel, "node", nodeResult, nativeResult);
                nodeMs = ms;
            }
            Console.Error.WriteLine(", ferry");
            var (ferryResult, ferryMs) = MeasureFerry(wasm, kernel.N);
            Check(kernel, "ferry", ferryResult, nativeResult);
            rows.Add(new Row(kernel.Name, kernel.N, nativeMs, nodeMs, ferryMs, ferryResult));
        }
        Print(rows);
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(new
            {
                machine = CpuModel(),
                dotnet = Environment.Version.ToString(),
                rows = rows.Select(r => new { r.Kernel, r.N, r.NativeMs, r.NodeMs, r.FerryMs, r.FerryOverNative, r.FerryOverNode }),
                geomeanFerryOverNative = GeoMean(rows.Select(r => r.FerryOverNative)),
                geomeanFerryOverNode = rows.All(r => r.FerryOverNode is not null) ? GeoMean(rows.Select(r => r.FerryOverNode!.Value)) : (double?)null,
            }, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {json}");
        }
        return 0;
    }

    private static (uint Result, double Ms) MeasureFerry(string wasm, uint n)
    {
        var module = Module.Load(File.ReadAllBytes(wasm));
        var store = new Store();
        var run = new Linker().Instantiate(store, module).GetFunction("run");
        var result = (uint)store.Invoke(run, Value.I32((int)n))[0].AsI32();
        var best = double.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            result = (uint)store.Invoke(run, Value.I32((int)n))[0].AsI32();
            best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
        }
        return (result, best);
    }

    /// <summary>Runs a program that prints "&lt;result&gt; &lt;milliseconds&gt;".</summary>
    private static (uint Result, double Ms) Measure(string program, string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        var parts = output.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (process.ExitCode != 0 || parts.Length != 2)
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed ({process.ExitCode}): {output}{errors}");
        return (uint.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    private static void Check(Kernel kernel, string runner, uint actual, uint expected)
    {
        if (actual != expected) throw new InvalidOperationException($"{kernel.Name}: {runner} computed {actual}, native computed {expected}");
    }

    private static void Print(List<Row> rows)
    {
        Console.WriteLine($"{"kernel",-10} {"n",7} {"native ms",10} {"node ms",9} {"ferry ms",9} {"ferry/native",13} {"ferry/node",11}");
        foreach (var r in rows)
        {
            Console.WriteLine($"{r.Kernel,-10} {r.N,7} {r.NativeMs,10:F1} {(r.NodeMs is { } n ? n.ToString("F1", CultureInfo.InvariantCulture) : "-"),9} {r.FerryMs,9:F1} {r.FerryOverNative,13:F2} {(r.FerryOverNode is { } o ? o.ToString("F2", CultureInfo.InvariantCulture) : "-"),11}");
        }
        if (rows.Count == 0) return;
        var native = GeoMean(rows.Select(r => r.FerryOverNative));
        var node = rows.All(r => r.FerryOverNode is not null) ? GeoMean(rows.Select(r => r.FerryOverNode!.Value)).ToString("F2", CultureInfo.InvariantCulture) : "-";
        Console.WriteLine($"{"geomean",-10} {"",7} {"",10} {"",9} {"",9} {native,13:F2} {node,11}");
    }

    private static double GeoMean(IEnumerable<double> values)
    {
        var list = values.ToList();
        return Math.Exp(list.Sum(Math.Log) / list.Count);
    }

    private static string? FindGuests()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "guests", "out");
            if (Directory.Exists(Path.Combine(candidate, "kernels"))) return candidate;
        }
        return null;
    }

    private static bool HasNode()
    {
        try
        {
            return NodeVersion().Length > 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static string NodeVersion()
    {
        using var process = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true })!;
        var version = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return version;
    }

    private static string CpuModel() =>
        File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : "unknown CPU";
}
