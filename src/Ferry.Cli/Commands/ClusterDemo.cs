using System.Net;
using System.Text;
using Ferry.Node;
using Ferry.Node.Client;

namespace Ferry.Cli.Commands;

/// <summary>
/// The cluster part of `ferry demo`: three nodes on loopback, a data file that lives only on node c, and a query
/// shipped to it from a client of node a (weak mobility): only the module, the request and the result travel.
/// </summary>
internal static class ClusterDemo
{
    public static async Task<int> Run(byte[] query)
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
                return exit ?? 1;
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

    private static void WriteRecords(string path, int count)
    {
        string[] regions = ["north", "south", "east", "west"];
        var random = new Random(11);
        using var writer = new StreamWriter(path, false, Encoding.ASCII);
        for (var id = 0; id < count; id++) writer.Write($"{id},{regions[random.Next(regions.Length)]},{random.Next(1, 10_000)}\n");
    }
}
