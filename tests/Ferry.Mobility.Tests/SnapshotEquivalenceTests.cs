using System.Text;
using Ferry.Engine;
using Ferry.Tests.Shared;
using Ferry.Wasi;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;

namespace Ferry.Mobility.Tests;

/// <summary>
/// Invariants 2 and 3 across OS processes: a guest saved at any instruction and resumed by a new `ferry`
/// process prints exactly the rest of its output (nothing twice, nothing lost) and exits as an uninterrupted run.
/// </summary>
public sealed class SnapshotEquivalenceTests
{
    public sealed record Case(string Guest, string[] Arguments, bool NeedsDirectory)
    {
        public override string ToString() => Guest;
    }

    public static TheoryData<Case> Cases() =>
    [
        new Case("hello", [], false),
        new Case("args_env", ["alpha", "beta gamma"], false),
        new Case("files", ["/data"], true),
        new Case("clock_random", [], false),
        new Case("dirtier", ["--mib", "2", "--iterations", "30", "--writes-per-iteration", "500", "--report", "10"], false),
        new Case("io", ["write", "1"], false),
        new Case("programs/fib", ["18"], false),
        new Case("programs/loops", ["40"], false),
        new Case("programs/sieve", ["1"], false),
        new Case("programs/matmul", ["1"], false),
        new Case("programs/memcpy", ["20"], false),
        new Case("programs/hashtable", ["1"], false),
        new Case("programs/quicksort", ["1"], false),
    ];

    private static string[] RunArguments(Case c, string? directory) =>
        [.. directory is null ? [] : new[] { "--dir", $"{directory}::/data" }, "--env", "FERRY_CASE=1", Guests.Wasm(c.Guest), .. c.Arguments];

    /// <summary>The guest's total instruction count, from an in-process run.</summary>
    private static long TotalInstructions(Case c, string? directory)
    {
        using var wasi = new WasiProcess(new WasiConfiguration
        {
            Arguments = [Guests.Wasm(c.Guest), .. c.Arguments],
            Environment = [new("FERRY_CASE", "1")],
            Preopens = directory is null ? [] : [new Preopen(directory, "/data")],
        });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, Module.Load(File.ReadAllBytes(Guests.Wasm(c.Guest))));
        var execution = store.Start(instance.GetFunction("_start"));
        execution.Run();
        return execution.InstructionsExecuted;
    }

    private static string Fresh(Case c) => c.NeedsDirectory ? TemporaryDirectories.Create("ferry-snap-") : "";

    private static Guests.Result Uninterrupted(Case c)
    {
        var directory = Fresh(c);
        return Guests.Ferry(["run", .. RunArguments(c, c.NeedsDirectory ? directory : null)]);
    }

    /// <summary>Runs to <paramref name="stops"/> (instruction counts from the previous stop), saving and resuming in a new process each time.</summary>
    private static (byte[] Stdout, string Stderr, int ExitCode) RunWithStops(Case c, long[] stops)
    {
        var directory = Fresh(c);
        var snapshot = Path.Combine(Path.GetTempPath(), $"ferry-{Guid.NewGuid():N}.snap");
        var stdout = new MemoryStream();
        var stderr = new StringBuilder();
        try
        {
            var result = Guests.Ferry(["run", "--pause-after-instructions", stops[0].ToString(), "--snapshot", snapshot, .. RunArguments(c, c.NeedsDirectory ? directory : null)]);
            for (var i = 1; ; i++)
            {
                stdout.Write(result.Stdout);
                stderr.Append(string.Join('\n', result.Stderr.Split('\n').Where(line => !line.StartsWith("ferry: stopped after", StringComparison.Ordinal))));
                if (result.ExitCode != 85) return (stdout.ToArray(), stderr.ToString(), result.ExitCode);
                result = i < stops.Length
                    ? Guests.Ferry(["resume", snapshot, "--pause-after-instructions", stops[i].ToString(), "--snapshot", snapshot])
                    : Guests.Ferry(["resume", snapshot]);
            }
        }
        finally
        {
            File.Delete(snapshot);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Saving_at_20_points_and_resuming_in_a_new_process_gives_the_uninterrupted_output(Case c)
    {
        var expected = Uninterrupted(c);
        var total = TotalInstructions(c, c.NeedsDirectory ? Fresh(c) : null);
        Assert.True(total > 20);
        for (var k = 1; k <= 20; k++)
        {
            var stop = total * k / 21;
            var (stdout, stderr, exitCode) = RunWithStops(c, [stop]);
            Assert.True(expected.Stdout.AsSpan().SequenceEqual(stdout), $"{c.Guest} saved at {stop} of {total}: stdout differs:\n{Encoding.UTF8.GetString(stdout)}");
            Assert.Equal(expected.Stderr, stderr);
            Assert.Equal(expected.ExitCode, exitCode);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_chain_of_five_save_and_resume_cycles_gives_the_uninterrupted_output(Case c)
    {
        var expected = Uninterrupted(c);
        var total = TotalInstructions(c, c.NeedsDirectory ? Fresh(c) : null);
        var step = Math.Max(1, total / 6);
        var (stdout, stderr, exitCode) = RunWithStops(c, [step, step, step, step, step]);
        Assert.Equal(expected.Text, Encoding.UTF8.GetString(stdout));
        Assert.Equal(expected.Stderr, stderr);
        Assert.Equal(expected.ExitCode, exitCode);
    }
}
