using System.Net;
using System.Text;
using Ferry.Node.Client;
using Ferry.Tests.Shared;

namespace Ferry.Node.Tests;

/// <summary>A graceful shutdown saves running processes; the next start resumes them where they stopped.</summary>
public sealed class ShutdownTests : IDisposable
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("ferry-shutdown-");

    public void Dispose() => _data.Delete(true);

    private Task<FerryNode> Start() => FerryNode.StartAsync(new NodeOptions
    {
        Name = "s",
        Listen = new IPEndPoint(IPAddress.Loopback, 0),
        DataDirectory = _data.FullName,
        Workers = 1,
        SliceFuel = 100_000,
    });

    [Fact]
    public async Task A_process_running_at_shutdown_is_saved_and_finishes_after_the_next_start_with_the_uninterrupted_result()
    {
        string[] arguments = ["--mib", "2", "--iterations", "4000", "--writes-per-iteration", "3000", "--report", "1000"];
        var expected = Guests.NativeRun("dirtier", arguments).Text;
        string id;
        var before = new MemoryStream();
        await using (var node = await Start())
        {
            using var client = new NodeClient(node.Address.ToString(), node.Key);
            id = await client.Submit(new SubmitRequest(await client.UploadModule(File.ReadAllBytes(Guests.Wasm("dirtier"))), [.. arguments], null, null));
            while ((await client.Process(id)).GetProperty("instructions").GetInt64() < 3_000_000) await Task.Delay(20);
            await client.CopyOutput(id, before, Stream.Null, follow: false);
        }
        Assert.True(File.Exists(Path.Combine(_data.FullName, "processes", id + ".snap")), "the running process was not saved");

        await using (var node = await Start())
        {
            using var client = new NodeClient(node.Address.ToString(), node.Key);
            // The log continues across the restart with the same sequence numbers: read from the start, it is the whole output, once.
            var whole = new MemoryStream();
            Assert.Equal(0, await client.CopyOutput(id, whole, Stream.Null, follow: true));
            Assert.Equal(expected, Encoding.UTF8.GetString(whole.ToArray()));
            Assert.StartsWith(Encoding.UTF8.GetString(before.ToArray()), expected);
            Assert.Empty(Directory.GetFiles(Path.Combine(_data.FullName, "processes")));
        }
    }
}
