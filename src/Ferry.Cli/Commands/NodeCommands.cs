using System.CommandLine;
using System.Net;
using System.Text.Json;
using Ferry.Node;
using Ferry.Node.Client;

namespace Ferry.Cli.Commands;

/// <summary>`ferry node start` and the client commands `submit`, `ps`, `logs` and `kill`.</summary>
internal static class NodeCommands
{
    public static Command Node()
    {
        var name = new Option<string>("--name") { Description = "This node's name", Required = true };
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to serve the API on", DefaultValueFactory = _ => "127.0.0.1:7070" };
        var data = new Option<string?>("--data") { Description = "Data directory: modules, the cluster key, files/ for preopens (default: ./ferry-NAME)" };
        var allow = new Option<string[]>("--allow-dir") { Description = "A host directory that submitted processes may preopen, besides DATA/files" };
        var workers = new Option<int?>("--workers") { Description = "Worker threads running processes (default: the number of cores)" };
        var maxModule = new Option<int>("--max-module-mib") { Description = "The largest module this node accepts, in MiB", DefaultValueFactory = _ => 256 };
        var join = new Option<string?>("--join") { Description = "HOST:PORT of any member of the cluster to join" };
        var keyFile = new Option<string?>("--key-file") { Description = "The cluster key, needed with --join (default: $FERRY_KEY)" };
        var peerSilence = new Option<double>("--peer-silence")
        {
            Description = "Seconds a migration's peer may send nothing before it is taken for dead and the migration given up",
            DefaultValueFactory = _ => Defaults.PeerSilence.TotalSeconds,
        };
        var drainTimeout = new Option<double>(DrainTimeoutName)
        {
            Description = "Seconds a stopping node waits for the migrations it sends and the post-copy memory it receives before it gives them up",
            DefaultValueFactory = _ => Defaults.MigrationDrainTimeout.TotalSeconds,
        };
        var start = new Command("start", "Run a node until SIGINT or SIGTERM") { name, listen, join, data, keyFile, allow, workers, maxModule, peerSilence, drainTimeout };
        start.SetAction(async (result, cancel) =>
        {
            if (!IPEndPoint.TryParse(result.GetValue(listen)!, out var endpoint)) return ProcessRunner.Fail(ExitCodes.Usage, $"--listen {result.GetValue(listen)}: expected HOST:PORT");
            var nodeName = result.GetValue(name)!;
            var seed = result.GetValue(join);
            var key = NodeClient.ResolveKey(result.GetValue(keyFile));
            if (seed is not null && string.IsNullOrEmpty(key)) return ProcessRunner.Fail(ExitCodes.Usage, "--join needs the cluster key: --key-file FIRST-NODE-DATA/cluster.key or FERRY_KEY");
            if (result.GetValue(maxModule) < 1) return ProcessRunner.Fail(ExitCodes.Usage, $"--max-module-mib {result.GetValue(maxModule)}: expected 1 or more");
            if (result.GetValue(peerSilence) is not (>= 1 and <= 3600)) return ProcessRunner.Fail(ExitCodes.Usage, $"--peer-silence {result.GetValue(peerSilence)}: expected 1 to 3600 seconds");
            if (result.GetValue(drainTimeout) is not (>= 0 and <= MaxDrainSeconds)) return ProcessRunner.Fail(ExitCodes.Usage, $"{DrainTimeoutName} {result.GetValue(drainTimeout)}: expected 0 to {MaxDrainSeconds} seconds");
            var crashAt = Environment.GetEnvironmentVariable("FERRY_CRASH_AS_TARGET_AT");
            Ferry.Mobility.Migration.MigrationStage? crashStage = null;
            if (!string.IsNullOrEmpty(crashAt))
            {
                if (!Enum.TryParse<Ferry.Mobility.Migration.MigrationStage>(crashAt, out var parsed) || !Enum.IsDefined(parsed))
                    return ProcessRunner.Fail(ExitCodes.Usage, $"FERRY_CRASH_AS_TARGET_AT={crashAt}: expected a migration stage ({string.Join(", ", Enum.GetNames<Ferry.Mobility.Migration.MigrationStage>())})");
                crashStage = parsed;
            }
            var options = new NodeOptions
            {
                CrashAsTargetAt = crashStage,
                Join = seed,
                Key = seed is null ? null : key,
                Name = nodeName,
                Listen = endpoint,
                DataDirectory = result.GetValue(data) ?? Path.Combine(Environment.CurrentDirectory, $"ferry-{nodeName}"),
                AllowedDirectories = result.GetValue(allow) ?? [],
                Workers = result.GetValue(workers) ?? Environment.ProcessorCount,
                MaxModuleBytes = (long)result.GetValue(maxModule) << 20,
                PeerSilence = TimeSpan.FromSeconds(result.GetValue(peerSilence)),
                MigrationDrainTimeout = TimeSpan.FromSeconds(result.GetValue(drainTimeout)),
            };
            FerryNode node;
            try
            {
                node = await FerryNode.StartAsync(options);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or HttpRequestException)
            {
                return ProcessRunner.Fail(ExitCodes.CannotStart, $"node {nodeName} cannot start: {e.Message}");
            }
            await using var running = node;
            Console.WriteLine($"ferry node {nodeName} listening on {node.Address}; data in {Path.GetFullPath(options.DataDirectory)}; key in {Path.Combine(Path.GetFullPath(options.DataDirectory), FerryNode.KeyFileName)}");
            try
            {
                await Task.Delay(Timeout.Infinite, cancel);
            }
            catch (OperationCanceledException)
            {
                Console.WriteLine($"ferry node {nodeName}: stopping; running processes are saved to {Path.Combine(Path.GetFullPath(options.DataDirectory), "processes")} and resume at the next start");
            }
            return 0;
        });
        return new Command("node", "Run a Ferry node") { start };
    }

    /// <summary>A node's settings when the command line leaves them be (name and data directory are always given).</summary>
    private static readonly NodeOptions Defaults = new() { Name = "", DataDirectory = "" };

    private const string DrainTimeoutName = "--drain-timeout";
    private const int MaxDrainSeconds = 3600;

    /// <summary>
    /// How long `ferry node start` may take to stop after SIGINT or SIGTERM, as <paramref name="parsed"/> asks it to run: the
    /// wait for its migrations (<c>--drain-timeout</c>), the saving of its processes (at most 10 s), and some to spare.
    /// Null for every other command.
    /// </summary>
    internal static TimeSpan? StopLimit(ParseResult parsed)
    {
        if (parsed.CommandResult.Command is not { Name: "start", Parents: var parents } || !parents.Any(p => p is Command { Name: "node" })) return null;
        var drain = parsed.GetValue<double>(DrainTimeoutName);
        // Out of range, the node refuses to start: its stop has nothing to wait for.
        return TimeSpan.FromSeconds(drain is >= 0 and <= MaxDrainSeconds ? drain : 0) + TimeSpan.FromSeconds(30);
    }

    internal sealed record ClientOptions(Option<string> Node, Option<string?> KeyFile);

    internal static ClientOptions Client()
    {
        var node = new Option<string>("--node") { Description = "HOST:PORT of a node", DefaultValueFactory = _ => "127.0.0.1:7070" };
        var keyFile = new Option<string?>("--key-file") { Description = "The cluster key file (default: $FERRY_KEY)" };
        return new ClientOptions(node, keyFile);
    }

    internal static async Task<int> WithClient(ParseResult result, ClientOptions options, Func<NodeClient, Task<int>> action)
    {
        string? key;
        try
        {
            key = NodeClient.ResolveKey(result.GetValue(options.KeyFile));
        }
        catch (IOException e)
        {
            return ProcessRunner.Fail(ExitCodes.Usage, $"cannot read the key file: {e.Message}");
        }
        if (string.IsNullOrEmpty(key)) return ProcessRunner.Fail(ExitCodes.Usage, "no cluster key: pass --key-file DATA/cluster.key or set FERRY_KEY");
        using var client = new NodeClient(result.GetValue(options.Node)!, key);
        try
        {
            return await action(client);
        }
        catch (NodeRequestException e)
        {
            return ProcessRunner.Fail(ExitCodes.CannotStart, e.Message);
        }
    }

    public static Command Submit()
    {
        var client = Client();
        var dirs = new Option<string[]>("--dir") { Description = "Preopen DIR[::GUEST] on the node: a path under its DATA/files or in its allow-list" };
        var envs = new Option<string[]>("--env") { Description = "K=V for the guest" };
        var wait = new Option<bool>("--wait") { Description = "Stream the output and exit with the process's exit code" };
        var stopAfter = new Option<long?>("--stop-after") { Description = "Stop the process after N instructions (then `ferry continue` it)", HelpName = "N" };
        var on = new Option<string?>("--on") { Description = "Run on this node of the cluster (it pulls the module by hash); default: the node asked" };
        var module = new Argument<FileInfo>("MODULE");
        var arguments = new Argument<string[]>("ARGS") { Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("submit", "Ship a module to a node and run it there; prints the process id") { client.Node, client.KeyFile, on, dirs, envs, wait, stopAfter, module, arguments };
        command.SetAction((result, _) => WithClient(result, client, async node =>
        {
            byte[] bytes;
            try
            {
                bytes = await File.ReadAllBytesAsync(result.GetValue(module)!.FullName);
            }
            catch (IOException e)
            {
                return ProcessRunner.Fail(ExitCodes.Usage, e.Message);
            }
            var env = new Dictionary<string, string>();
            foreach (var assignment in result.GetValue(envs) ?? [])
            {
                var equals = assignment.IndexOf('=');
                if (equals <= 0) return ProcessRunner.Fail(ExitCodes.Usage, $"--env {assignment}: expected K=V");
                env[assignment[..equals]] = assignment[(equals + 1)..];
            }
            var hash = await node.UploadModule(bytes);
            // argv[0] is the module's file name as given, as with `ferry run`.
            var id = await node.Submit(new SubmitRequest(hash, [.. result.GetValue(arguments) ?? []], env, [.. result.GetValue(dirs) ?? []], result.GetValue(on), StopAfter: result.GetValue(stopAfter), Argv0: result.GetValue(module)!.ToString()));
            if (!result.GetValue(wait))
            {
                Console.WriteLine(id);
                return 0;
            }
            Console.Error.WriteLine($"ferry: process {id}");
            return await node.CopyOutput(id, Console.OpenStandardOutput(), Console.OpenStandardError(), follow: true, ReportLostOutput) ?? ExitCodes.Trap;
        }));
        return command;
    }

    /// <summary>Says, on Ferry's own stderr line, where the guest's output has a gap the nodes no longer hold.</summary>
    private static void ReportLostOutput(int stream, long bytes) =>
        Console.Error.WriteLine($"ferry: {bytes:N0} bytes of {(stream == 1 ? "stdout" : "stderr")} are missing here: a node keeps only the last 1 MiB of each stream");

    public static Command Ps()
    {
        var client = Client();
        var json = new Option<bool>("--json") { Description = "Print JSON" };
        var command = new Command("ps", "List the processes of a node") { client.Node, client.KeyFile, json };
        command.SetAction((result, _) => WithClient(result, client, async node =>
        {
            var processes = await node.Processes();
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(processes, new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            Console.WriteLine($"{"ID",-16} {"STATE",-10} {"EXIT",5} {"INSTRUCTIONS",15}  MODULE");
            foreach (var p in processes.EnumerateArray())
            {
                var exit = p.GetProperty("exitCode");
                Console.WriteLine($"{p.GetProperty("id").GetString(),-16} {p.GetProperty("state").GetString(),-10} {(exit.ValueKind == JsonValueKind.Number ? exit.GetInt32().ToString() : "-"),5} {p.GetProperty("instructions").GetInt64(),15:N0}  {p.GetProperty("module").GetString()![..16]}");
            }
            return 0;
        }));
        return command;
    }

    public static Command Logs()
    {
        var client = Client();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep streaming until the process ends" };
        var id = new Argument<string>("PID");
        var command = new Command("logs", "Print a process's output") { client.Node, client.KeyFile, follow, id };
        command.SetAction((result, _) => WithClient(result, client, async node =>
        {
            await node.CopyOutput(result.GetValue(id)!, Console.OpenStandardOutput(), Console.OpenStandardError(), result.GetValue(follow), ReportLostOutput);
            return 0;
        }));
        return command;
    }

    public static Command Kill()
    {
        var client = Client();
        var id = new Argument<string>("PID");
        var command = new Command("kill", "Stop a process") { client.Node, client.KeyFile, id };
        command.SetAction((result, _) => WithClient(result, client, async node =>
        {
            await node.Kill(result.GetValue(id)!);
            return 0;
        }));
        return command;
    }
}
