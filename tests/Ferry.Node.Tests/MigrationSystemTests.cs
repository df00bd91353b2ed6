using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Ferry.Node.Client;
using Ferry.Tests.Shared;
using Xunit.Abstractions;

namespace Ferry.Node.Tests;

/// <summary>
/// Live migration between three `ferry node` OS processes on 127.0.0.1: each guest, each strategy, several moves in
/// one run, against an uninterrupted run (invariants 2 and 3).
/// </summary>
public sealed class MigrationSystemTests(ITestOutputHelper output) : IDisposable
{
    private readonly NodeProcesses _cluster = new();

    private static readonly string[] Strategies = ["stop-copy", "pre-copy", "post-copy", "hybrid"];

    private void StartCluster()
    {
        _cluster.Start("a", null);
        _cluster.Start("b", _cluster.Nodes[0].Address);
        _cluster.Start("c", _cluster.Nodes[0].Address);
    }

    private NodeClient Client(int index) => _cluster.Client(index);

    public void Dispose() => _cluster.Dispose();

    private static async Task<JsonElement> WaitFor(NodeClient client, string id, string state)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var process = await client.Process(id);
            if (process.GetProperty("state").GetString() == state) return process;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"{id} never reached {state}: {process}");
            await Task.Delay(20);
        }
    }

    private static async Task<JsonElement> Migrate(NodeClient client, string id, string to, string strategy, bool wholeFrames = false)
    {
        var last = await client.Migrate(id, new MigrateRequest(to, strategy, MaxDowntimeMs: 5, MaxRounds: 3, WholeFrames: wholeFrames));
        Assert.True(last.TryGetProperty("report", out var report), $"migrating {id} to {to} ({strategy}) failed: {last}");
        return report;
    }

    /// <summary>Every terminating guest of guests/ (echo_server serves until its clients go; demo needs `ferry demo`'s host function).</summary>
    public static TheoryData<string, string[], string?> Guests => new()
    {
        { "hello", [], null },
        { "args_env", ["one", "two"], null },
        { "clock_random", [], null },
        { "dirtier", ["--mib", "2", "--iterations", "200", "--writes-per-iteration", "500", "--report", "20"], null },
        // With a preopened directory in the shared file system: open files and directories move with their offsets.
        { "files", ["/data"], "empty" },
        { "io", ["read", "/data/blob"], "blob" },
        { "query", ["/data/sales.csv", "north"], "sales" },
        { "escape", ["/data"], "tree" },
        { "programs/fib", [], null },
        { "programs/hashtable", [], null },
        { "programs/loops", [], null },
        { "programs/matmul", [], null },
        { "programs/memcpy", [], null },
        { "programs/quicksort", [], null },
        { "programs/sieve", [], null },
        // An interpreter: deep recursion through closures, builtins through function pointers, memory grown by malloc as it runs.
        { "lisp", [], null },
    };

    private int _runs;

    /// <summary>A fresh directory for one run under the nodes' shared directory, as the guest expects it, preopened as /data.</summary>
    private List<string>? RunDirectory(string? contents)
    {
        if (contents is null) return null;
        var run = Directory.CreateDirectory(Path.Combine(_cluster.SharedDirectory, $"run-{++_runs}")).FullName;
        switch (contents)
        {
            case "blob":
                var bytes = new byte[3 << 20];
                new Random(7).NextBytes(bytes);
                File.WriteAllBytes(Path.Combine(run, "blob"), bytes);
                break;
            case "sales":
                var random = new Random(11);
                string[] regions = ["north", "south", "east", "west"];
                File.WriteAllLines(Path.Combine(run, "sales.csv"), Enumerable.Range(1, 20_000).Select(i => $"{i},{regions[random.Next(4)]},{random.Next(1, 100_000)}"));
                break;
            case "tree":
                Directory.CreateDirectory(Path.Combine(run, "sub"));
                Directory.CreateDirectory(Path.Combine(run, "d"));
                File.WriteAllText(Path.Combine(run, "inside.txt"), "hi");
                File.WriteAllText(run + "-outside.txt", "secret");
                File.CreateSymbolicLink(Path.Combine(run, "link-absolute"), run + "-outside.txt");
                File.CreateSymbolicLink(Path.Combine(run, "link-up"), "..");
                break;
        }
        return [$"{run}::/data"];
    }

    [Theory]
    [MemberData(nameof(Guests))]
    public async Task Each_guest_moved_twice_in_one_run_with_each_strategy_gives_the_uninterrupted_output(string guest, string[] arguments, string? directory)
    {
        StartCluster();
        using var a = Client(0);
        var hash = await a.UploadModule(File.ReadAllBytes(Ferry.Tests.Shared.Guests.Wasm(guest)));
        var reference = await a.Submit(new SubmitRequest(hash, [.. arguments], null, RunDirectory(directory)));
        var expected = new MemoryStream();
        var expectedExit = await a.CopyOutput(reference, expected, Stream.Null, follow: true);
        var total = (await a.Process(reference)).GetProperty("instructions").GetInt64();
        Assert.True(total > 3, $"{guest} ran {total} instructions");

        foreach (var strategy in Strategies)
        {
            // Stop at a third of the run, move to b, run another third, move to c, finish there; read it all through a.
            var id = await a.Submit(new SubmitRequest(hash, [.. arguments], null, RunDirectory(directory), StopAfter: total / 3));
            await WaitFor(a, id, "Stopped");
            await Migrate(a, id, "b", strategy);
            await a.Continue(id, total / 3);
            var stopped = await WaitFor(a, id, "Stopped");
            Assert.Equal("b", stopped.GetProperty("node").GetString());
            Assert.Equal(total / 3 * 2, stopped.GetProperty("instructions").GetInt64());
            await Migrate(a, id, "c", strategy);
            await a.Continue(id, null);
            var moved = new MemoryStream();
            Assert.Equal(expectedExit, await a.CopyOutput(id, moved, Stream.Null, follow: true));
            Assert.Equal(Encoding.UTF8.GetString(expected.ToArray()), Encoding.UTF8.GetString(moved.ToArray()));
            var finished = await a.Process(id);
            Assert.Equal("c", finished.GetProperty("node").GetString());
            Assert.Equal(total, finished.GetProperty("instructions").GetInt64());
        }
    }

    /// <summary>Submits dirtier with <paramref name="arguments"/> to <paramref name="a"/>; returns its id and what its native build prints.</summary>
    private static async Task<(string Id, Ferry.Tests.Shared.Guests.Result Native)> SubmitDirtier(NodeClient a, string[] arguments)
    {
        var hash = await a.UploadModule(File.ReadAllBytes(Ferry.Tests.Shared.Guests.Wasm("dirtier")));
        var native = Ferry.Tests.Shared.Guests.Run(new ProcessStartInfo(Ferry.Tests.Shared.Guests.Native("dirtier"), arguments));
        return (await a.Submit(new SubmitRequest(hash, [.. arguments], null, null)), native);
    }

    /// <summary>Follows the process's output through <paramref name="a"/> to its end: the native build's exit code and bytes.</summary>
    private static async Task AssertOutputIsNatives(NodeClient a, string id, Ferry.Tests.Shared.Guests.Result native)
    {
        var moved = new MemoryStream();
        Assert.Equal(native.ExitCode, await a.CopyOutput(id, moved, Stream.Null, follow: true));
        Assert.Equal(native.Text, Encoding.UTF8.GetString(moved.ToArray()));
    }

    [Fact]
    public async Task A_running_process_moves_live_around_the_cluster_with_every_strategy_and_its_output_is_whole()
    {
        StartCluster();
        using var a = Client(0);
        var (id, native) = await SubmitDirtier(a, ["--mib", "16", "--iterations", "3000", "--writes-per-iteration", "300", "--report", "100", "--sleep-us", "500"]);
        // Pre-copy twice: its stop sends dirtied frames as their written lines, then (whole frames) as they are.
        var hops = new[] { ("b", "pre-copy", false), ("c", "post-copy", false), ("a", "hybrid", false), ("b", "stop-copy", false), ("c", "pre-copy", true) };
        foreach (var (to, strategy, wholeFrames) in hops)
        {
            await Task.Delay(150);
            var report = await Migrate(a, id, to, strategy, wholeFrames);
            var stopFrames = report.GetProperty("stopFrames").GetInt64();
            var deltaFrames = report.GetProperty("stopDeltaFrames").GetInt64();
            output.WriteLine($"{strategy}{(wholeFrames ? " (whole frames)" : "")} to {to}: downtime {report.GetProperty("downtimeMs").GetDouble():N2} ms, total {report.GetProperty("totalMs").GetDouble():N1} ms, {report.GetProperty("bytesSent").GetInt64():N0} bytes, {stopFrames} frames at the stop, {deltaFrames} as lines");
            if (strategy is "post-copy" or "hybrid") Assert.Equal(0, report.GetProperty("framesSentTwice").GetInt64());
            if (strategy != "pre-copy" || wholeFrames) Assert.Equal(0, deltaFrames);
            else Assert.InRange(deltaFrames, 0, stopFrames);
        }
        await AssertOutputIsNatives(a, id, native);
    }

    [Fact]
    public async Task Migration_settings_out_of_range_are_refused_with_the_reason_and_the_process_runs_on_where_it_was()
    {
        StartCluster();
        using var a = Client(0);
        var (id, native) = await SubmitDirtier(a, ["--mib", "2", "--iterations", "400", "--writes-per-iteration", "300", "--report", "40", "--sleep-us", "500"]);
        var refusals = new[]
        {
            (new MigrateRequest("b", "pre-copy", MaxDowntimeMs: -5), "max downtime must be above 0 ms"),
            (new MigrateRequest("b", "pre-copy", MaxRounds: 0), "max rounds must be at least 1, not 0"),
            (new MigrateRequest("b", "pre-copy", BandwidthMBps: -1), "bandwidth must be 0 (unlimited) or at least 0.1 MB/s, not -1 MB/s"),
            (new MigrateRequest("b", "stop-copy", BandwidthMBps: 0.01), "not 0.01 MB/s"),
        };
        foreach (var (request, reason) in refusals)
        {
            var refused = await Assert.ThrowsAsync<NodeRequestException>(() => a.Migrate(id, request));
            Assert.Equal(400, refused.Status);
            Assert.Contains(reason, refused.Message);
        }
        Assert.Equal("a", (await a.Process(id)).GetProperty("node").GetString());
        await AssertOutputIsNatives(a, id, native);
    }

    [Fact]
    public async Task Two_migrations_of_one_process_at_once_move_it_once_and_the_other_is_refused()
    {
        StartCluster();
        using var a = Client(0);
        var (id, native) = await SubmitDirtier(a, ["--mib", "32", "--iterations", "8000", "--writes-per-iteration", "300", "--report", "100", "--sleep-us", "500"]);
        await Task.Delay(200);
        // At 40 MB/s the first one's round 0 alone takes most of a second: the second arrives while it runs.
        async Task<string> Attempt(string to)
        {
            try
            {
                var last = await a.Migrate(id, new MigrateRequest(to, "pre-copy", BandwidthMBps: 40));
                return last.TryGetProperty("report", out _) ? $"moved to {to}" : $"failed: {last}";
            }
            catch (NodeRequestException e) when (e.Status == 409)
            {
                return "refused";
            }
        }
        var outcomes = await Task.WhenAll(Attempt("b"), Attempt("c"));
        output.WriteLine(string.Join("; ", outcomes));
        Assert.Single(outcomes, o => o.StartsWith("moved to", StringComparison.Ordinal));
        Assert.Single(outcomes, o => o == "refused");
        await AssertOutputIsNatives(a, id, native);
        var finished = await a.Process(id);
        Assert.Equal(outcomes.Single(o => o.StartsWith("moved to", StringComparison.Ordinal))[^1..], finished.GetProperty("node").GetString());
    }
}
