using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Ferry.Node;
using Ferry.Node.Client;

namespace Ferry.Bench;

/// <summary>
/// Weak mobility: a query over a 256 MiB file that lives only on node B, submitted from a client of node A.
/// Shipping the code moves the module, the request and the result; the alternative moves the file.
/// </summary>
internal static class WeakMobilityBench
{
    public static async Task<int> Run(string guests, string? json)
    {
        const long Size = 256L << 20;
        var root = Directory.CreateTempSubdirectory("ferry-weak-");
        try
        {
            await using var a = await FerryNode.StartAsync(new NodeOptions { Name = "a", Listen = new IPEndPoint(IPAddress.Loopback, 0), DataDirectory = Path.Combine(root.FullName, "a") });
            await using var b = await FerryNode.StartAsync(new NodeOptions
            {
                Name = "b", Listen = new IPEndPoint(IPAddress.Loopback, 0), DataDirectory = Path.Combine(root.FullName, "b"), Join = a.Address.ToString(), Key = a.Key,
            });
            var data = Path.Combine(root.FullName, "b", "files", "data");
            Directory.CreateDirectory(data);
            var file = Path.Combine(data, "records.csv");
            Console.Error.WriteLine("bench: writing 256 MiB of records on node b");
            WriteRecords(file, Size);
            var size = new FileInfo(file).Length;
            var module = File.ReadAllBytes(Path.Combine(guests, "query.wasm"));

            using var client = new NodeClient(a.Address.ToString(), a.Key);
            var before = a.BytesIn + a.BytesOut + b.BytesIn + b.BytesOut;
            var clock = Stopwatch.StartNew();
            var hash = await client.UploadModule(module);
            var id = await client.Submit(new SubmitRequest(hash, ["/data/records.csv", "north"], null, ["data::/data"], On: "b"));
            var output = new MemoryStream();
            var exit = await client.CopyOutput(id, output, Stream.Null, follow: true);
            var shipped = clock.Elapsed.TotalMilliseconds;
            var crossed = a.BytesIn + a.BytesOut + b.BytesIn + b.BytesOut - before;
            var result = Encoding.UTF8.GetString(output.ToArray()).Trim();
            if (exit != 0) throw new InvalidOperationException($"the query failed ({exit}): {result}");

            clock.Restart();
            var copy = Path.Combine(root.FullName, "a", "records.csv");
            File.Copy(file, copy);
            var local = Ferry.Tests.Shared.Guests.Run(new ProcessStartInfo(Path.Combine(guests, "native", "query")) { ArgumentList = { copy, "north" } });
            var copied = clock.Elapsed.TotalMilliseconds;
            if (local.Text.Trim() != result) throw new InvalidOperationException($"shipped code computed '{result}', the local copy '{local.Text.Trim()}'");

            Console.WriteLine($"query over {size / 1048576.0:F0} MiB on node b, asked at node a: {result}");
            Console.WriteLine($"{"path",-34} {"bytes over the network",24} {"ms",8}");
            Console.WriteLine($"{"ship the code to the data",-34} {crossed,24:N0} {shipped,8:F0}");
            Console.WriteLine($"{"copy the data to the code",-34} {size,24:N0} {copied,8:F0}");
            Console.WriteLine($"shipped code moved {100.0 * crossed / size:F4}% of the bytes (module {module.Length:N0} B, node b pulled {b.ModuleBytesPulled:N0} B of code)");
            if (json is not null)
            {
                File.WriteAllText(json, JsonSerializer.Serialize(new { fileBytes = size, shippedBytes = crossed, shippedMs = shipped, copyMs = copied, moduleBytes = module.Length, result }));
            }
            return 0;
        }
        finally
        {
            root.Delete(true);
        }
    }

    private static void WriteRecords(string path, long size)
    {
        string[] regions = ["north", "south", "east", "west", "central"];
        var random = new Random(7);
        using var writer = new StreamWriter(path, false, Encoding.ASCII, 1 << 20);
        long written = 0;
        var builder = new StringBuilder();
        for (var id = 0L; written < size; id++)
        {
            builder.Clear().Append(id).Append(',').Append(regions[random.Next(regions.Length)]).Append(',').Append(random.Next(1, 100_000)).Append('\n');
            writer.Write(builder);
            written += builder.Length;
        }
    }
}
