using System.Net;
using System.Text;
using System.Text.Json;
using Ferry.Node;
using Ferry.Node.Client;

namespace Ferry.Cli.Commands;

/// <summary>
/// The cluster part of `ferry demo`: three nodes on loopback, a data file that lives only on node c, and a query
/// shipped to it from a client of node a (weak mobility): only the module, the request and the result travel; then a
/// running process moved live between the nodes with each migration strategy.
/// </summary>
internal static class ClusterDemo
{
    public static async Task<int> Run(byte[] query, byte[] dirtier)
    {
        var root = Directory.CreateTempSubdirectory("ferry-demo-");
        try
        {
            Console.WriteLine("1. weak mobility: three nodes on 127.0.0.1, the data on c, the question asked at a");
            var nodes = new List<FerryNode>();
            try
            {
                foreach (var name in new[] { "a", "b", "c" })
                {
                    nodes.Add(await FerryNode.StartAsync(new NodeOptions
                    {
                        Name = name,
                        Listen = new IPEndPoint(IPAddress.Loopback, 0),
                        DataDirectory = Path.Combine(root.FullName, name),
                        Workers = 1,
                        Join = nodes.Count == 0 ? null : nodes[^1].Address.ToString(),
                        Key = nodes.Count == 0 ? null : nodes[0].Key,
                        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
                    }));
                }
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
                while (nodes.Any(n => n.Cluster.Members.Count != 3) && DateTime.UtcNow < deadline) await Task.Delay(50);
                foreach (var member in nodes[0].Cluster.Members)
                    Console.WriteLine($"   node {member.Name} at {member.Address}: {member.State}, run queue {member.Load?.RunQueue ?? 0}");

                var data = Path.Combine(root.FullName, "c", "files", "sales");
                Directory.CreateDirectory(data);
                var records = Path.Combine(data, "records.csv");
                WriteRecords(records, 200_000);
                var size = new FileInfo(records).Length;
                Console.WriteLine($"   c holds sales/records.csv: {size:N0} bytes");

                using var client = new NodeClient(nodes[0].Address.ToString(), nodes[0].Key);
                var before = nodes.Sum(n => n.BytesIn + n.BytesOut);
                var hash = await client.UploadModule(query);
                var id = await client.Submit(new SubmitRequest(hash, ["/sales/records.csv", "north"], null, ["sales::/sales"], On: "c"));
                Console.WriteLine($"   submitted the query (module {hash[..12]}, {query.Length:N0} bytes) at a to run on c: process {id}");
                var answer = new MemoryStream();
                var exit = await client.CopyOutput(id, answer, Stream.Null, follow: true);
                var moved = nodes.Sum(n => n.BytesIn + n.BytesOut) - before;
                Console.WriteLine($"   result, read back through a: {Encoding.UTF8.GetString(answer.ToArray()).Trim()} (exit {exit})");
                Console.WriteLine($"   bytes over the network: {moved:N0} instead of {size:N0} to copy the data ({100.0 * moved / size:F1}%); c pulled the code once ({nodes[2].ModuleBytesPulled:N0} bytes)");
                Console.WriteLine();
                return (exit ?? 1) | await LiveMigration(client, dirtier);
            }
            finally
            {
                foreach (var node in nodes) await node.DisposeAsync();
            }
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Part 2: a running dirtier (16 MiB, writing all the while) moved live around the three nodes, once with each
    /// strategy, then checked against a copy on node c that never moved.
    /// </summary>
    private static async Task<int> LiveMigration(NodeClient client, byte[] dirtier)
    {
        Console.WriteLine("2. live migration: a process writing to 16 MiB of memory moves a -> b -> c -> a -> b while it runs");
        string[] arguments = ["--mib", "16", "--iterations", "4000", "--writes-per-iteration", "200", "--sleep-us", "1000"];
        var hash = await client.UploadModule(dirtier);
        var id = await client.Submit(new SubmitRequest(hash, [.. arguments], null, null, On: "a"));
        var reference = await client.Submit(new SubmitRequest(hash, [.. arguments], null, null, On: "c"));
        Console.WriteLine($"   process {id} started on a; an unmoved copy, {reference}, runs on c for comparison");
        await Task.Delay(TimeSpan.FromMilliseconds(800));
        Console.WriteLine($"   {"strategy",-10} {"move",-7} {"total ms",9} {"downtime ms",12} {"MB sent",8} {"rounds",7} {"faults",7}");
        foreach (var (strategy, to, from) in new[] { ("stop-copy", "b", "a"), ("pre-copy", "c", "b"), ("post-copy", "a", "c"), ("hybrid", "b", "a") })
        {
            JsonElement last;
            try
            {
                last = await client.Migrate(id, new MigrateRequest(to, strategy));
            }
            catch (NodeRequestException e)
            {
                Console.Error.WriteLine($"ferry demo: moving {id} {from} -> {to} with {strategy} was refused: {e.Message}");
                return 1;
            }
            if (last.TryGetProperty("error", out var error))
            {
                Console.Error.WriteLine($"ferry demo: moving {id} {from} -> {to} with {strategy} failed: {error.GetString()}");
                return 1;
            }
            var r = last.GetProperty("report");
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"   {strategy,-10} {from + " -> " + to,-7} {r.GetProperty("totalMs").GetDouble(),9:N1} {r.GetProperty("downtimeMs").GetDouble(),12:N2} {r.GetProperty("bytesSent").GetInt64() / 1e6,8:N1} {r.GetProperty("rounds").GetArrayLength(),7} {r.GetProperty("postCopyFaults").GetInt64(),7}"));
        }
        var moved = new MemoryStream();
        var movedExit = await client.CopyOutput(id, moved, Stream.Null, follow: true);
        var unmoved = new MemoryStream();
        var unmovedExit = await client.CopyOutput(reference, unmoved, Stream.Null, follow: true);
        var result = Encoding.UTF8.GetString(moved.ToArray()).Trim();
        var same = result == Encoding.UTF8.GetString(unmoved.ToArray()).Trim() && movedExit == unmovedExit;
        Console.WriteLine($"   the moved process ended on b: {result} (exit {movedExit})");
        Console.WriteLine(same ? "   the copy that never moved printed the same: identical" : $"   MISMATCH: the copy that never moved printed {Encoding.UTF8.GetString(unmoved.ToArray()).Trim()} (exit {unmovedExit})");
        return same && movedExit == 0 ? 0 : 1;
    }

    private static void WriteRecords(string path, int count)
    {
        string[] regions = ["north", "south", "east", "west"];
        var random = new Random(11);
        using var writer = new StreamWriter(path, false, Encoding.ASCII);
        for (var id = 0; id < count; id++) writer.Write($"{id},{regions[random.Next(regions.Length)]},{random.Next(1, 10_000)}\n");
    }
}
