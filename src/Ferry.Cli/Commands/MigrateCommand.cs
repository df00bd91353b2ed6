using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferry.Node;

namespace Ferry.Cli.Commands;

/// <summary>`ferry migrate`, and `ferry stop` / `ferry continue` to hold a process at a point of its run.</summary>
internal static class MigrateCommand
{
    public static Command Create()
    {
        var client = NodeCommands.Client();
        var id = new Argument<string>("PID");
        var to = new Option<string>("--to") { Description = "The node to move the process to", Required = true };
        var strategy = new Option<string>("--strategy") { Description = "stop-copy, pre-copy, post-copy or hybrid", DefaultValueFactory = _ => "pre-copy" };
        strategy.AcceptOnlyFromAmong("stop-copy", "pre-copy", "post-copy", "hybrid");
        var maxDowntime = new Option<double>("--max-downtime") { Description = "Pre-copy: iterate until the final stop is estimated to fit this (ms)", HelpName = "MS", DefaultValueFactory = _ => 20 };
        var maxRounds = new Option<int>("--max-rounds") { Description = "Pre-copy rounds at most", HelpName = "N", DefaultValueFactory = _ => 30 };
        var bandwidth = new Option<double>("--bandwidth") { Description = "Limit the memory transfer to this rate (MB/s; 0: unlimited)", HelpName = "MB/s" };
        var autoConverge = new Option<bool>("--auto-converge") { Description = "Slow the process while pre-copy rounds do not shrink" };
        var wholeFrames = new Option<bool>("--whole-frames") { Description = "Pre-copy: send the stop's dirtied frames whole, not as the 64-byte lines written since each one's last copy" };
        var json = new Option<bool>("--json") { Description = "Print the final report as JSON" };
        var command = new Command("migrate", "Move a running process to another node, live; prints progress and a report")
        {
            client.Node, client.KeyFile, to, strategy, maxDowntime, maxRounds, bandwidth, autoConverge, wholeFrames, json, id,
        };
        command.SetAction((result, _) => NodeCommands.WithClient(result, client, async node =>
        {
            var request = new MigrateRequest(result.GetValue(to)!, result.GetValue(strategy), result.GetValue(maxDowntime), result.GetValue(maxRounds), result.GetValue(bandwidth), result.GetValue(autoConverge), result.GetValue(wholeFrames));
            var live = !Console.IsErrorRedirected && !result.GetValue(json);
            var last = await node.Migrate(result.GetValue(id)!, request, line =>
            {
                if (line.TryGetProperty("progress", out var p)) ShowProgress(p, live);
            });
            if (live) Console.Error.WriteLine();
            if (last.TryGetProperty("error", out var error))
            {
                var committed = last.TryGetProperty("committed", out var c) && c.GetBoolean();
                if (result.GetValue(json)) Console.WriteLine(last.GetRawText());
                return ProcessRunner.Fail(ExitCodes.CannotStart, committed
                    ? $"the target committed, then: {error.GetString()}"
                    : $"{error.GetString()}");
            }
            var report = last.GetProperty("report");
            if (result.GetValue(json)) Console.WriteLine(report.GetRawText());
            else PrintReport(report);
            return 0;
        }));
        return command;
    }

    private static void ShowProgress(JsonElement p, bool live)
    {
        var stage = p.GetProperty("stage").GetString();
        var estimate = p.GetProperty("estimatedDowntimeMs");
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{stage,-17} round {p.GetProperty("round").GetInt32(),2}  dirty {p.GetProperty("dirtyFrames").GetInt64(),8:N0} frames  left {p.GetProperty("framesLeft").GetInt64(),8:N0}  {p.GetProperty("mbPerSecond").GetDouble(),8:N1} MB/s  est. downtime {(estimate.ValueKind == JsonValueKind.Number ? $"{estimate.GetDouble():N1} ms" : "-"),10}  sent {p.GetProperty("bytesSent").GetInt64() / 1e6:N1} MB");
        if (live) Console.Error.Write("\r" + text.PadRight(Math.Max(0, Console.WindowWidth > 0 ? Math.Min(Console.WindowWidth - 1, 140) : 120)));
        else Console.Error.WriteLine(text);
    }

    private static void PrintReport(JsonElement r)
    {
        string N(string name) => r.GetProperty(name).GetDouble().ToString("N1", CultureInfo.InvariantCulture);
        Console.WriteLine($"migrated {r.GetProperty("from").GetString()} -> {r.GetProperty("to").GetString()} ({r.GetProperty("strategy").GetString()})");
        Console.WriteLine($"  total        {N("totalMs")} ms");
        Console.WriteLine($"  downtime     {N("downtimeMs")} ms");
        Console.WriteLine($"  bytes sent   {r.GetProperty("bytesSent").GetInt64():N0}");
        Console.WriteLine($"  state        {r.GetProperty("stateBytes").GetInt64():N0} bytes; {r.GetProperty("stopFrames").GetInt64():N0} frames at the stop ({r.GetProperty("stopDeltaFrames").GetInt64():N0} as changed lines); {r.GetProperty("zeroFramesSkipped").GetInt64():N0} zero frames skipped");
        var rounds = r.GetProperty("rounds");
        if (rounds.GetArrayLength() > 0)
        {
            Console.WriteLine("  round   frames   zero-skipped        bytes        ms   dirtied");
            foreach (var round in rounds.EnumerateArray())
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {round.GetProperty("number").GetInt32(),5} {round.GetProperty("frames").GetInt64(),8:N0} {round.GetProperty("zeroSkipped").GetInt64(),14:N0} {round.GetProperty("bytes").GetInt64(),12:N0} {round.GetProperty("ms").GetDouble(),9:N1} {round.GetProperty("dirtied").GetInt64(),9:N0}"));
            }
        }
        if (r.GetProperty("strategy").GetString() is "post-copy" or "hybrid")
        {
            Console.WriteLine($"  post-copy    {r.GetProperty("postCopyFrames").GetInt64():N0} frames pushed, {r.GetProperty("postCopyFaults").GetInt64():N0} faults, {Blocked(r)}, {r.GetProperty("framesSentTwice").GetInt64()} sent twice{Resends(r)}");
            Console.WriteLine($"  depended on the source for {N("sourceDependenceMs")} ms after activation");
        }
    }

    /// <summary>The target's time blocked on faults, which its acknowledgement carries: unknown if that failed its checksum.</summary>
    private static string Blocked(JsonElement report) =>
        report.GetProperty("postCopyBlockedMs") is { ValueKind: JsonValueKind.Number } blocked
            ? $"{blocked.GetDouble().ToString("N1", CultureInfo.InvariantCulture)} ms blocked"
            : "blocked time unknown (the target's acknowledgement failed its checksum)";

    /// <summary>Why frames went twice, when they did: pushed messages that failed their checksum at the target and were sent again.</summary>
    private static string Resends(JsonElement report) =>
        report.TryGetProperty("pushResends", out var resends) && resends.GetUInt32() > 0 ? $" ({resends.GetUInt32()} resends after corrupt messages)" : "";

    public static Command Stop()
    {
        var client = NodeCommands.Client();
        var id = new Argument<string>("PID");
        var command = new Command("stop", "Hold a process at its next safepoint (it keeps its place; `ferry continue` resumes it)") { client.Node, client.KeyFile, id };
        command.SetAction((result, _) => NodeCommands.WithClient(result, client, async node =>
        {
            await node.Stop(result.GetValue(id)!);
            return 0;
        }));
        return command;
    }

    public static Command Continue()
    {
        var client = NodeCommands.Client();
        var id = new Argument<string>("PID");
        var instructions = new Option<long?>("--instructions") { Description = "Run this many more instructions, then stop again", HelpName = "N" };
        var command = new Command("continue", "Let a stopped process run again") { client.Node, client.KeyFile, instructions, id };
        command.SetAction((result, _) => NodeCommands.WithClient(result, client, async node =>
        {
            await node.Continue(result.GetValue(id)!, result.GetValue(instructions));
            return 0;
        }));
        return command;
    }
}
