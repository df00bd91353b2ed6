using System.Diagnostics;
using Ferry.Node.Client;
using Ferry.Tests.Shared;
using Xunit.Abstractions;

namespace Ferry.Node.Tests;

/// <summary>Three `ferry node` OS processes on 127.0.0.1: join, run everywhere, read from anywhere, kill -9 one.</summary>
public sealed class ThreeNodeSystemTests(ITestOutputHelper output) : IDisposable
{
    private readonly NodeProcesses _cluster = new();

    private NodeClient Client(int index) => _cluster.Client(index);

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task Three_node_processes_join_run_guests_everywhere_and_survive_a_kill_9()
    {
        _cluster.Start("a", null);
        _cluster.Start("b", _cluster.Nodes[0].Address);
        _cluster.Start("c", _cluster.Nodes[1].Address);
        using var a = Client(0);
        using var b = Client(1);
        var hash = await a.UploadModule(File.ReadAllBytes(Guests.Wasm("args_env")));
        var ids = new List<string>();
        foreach (var node in new[] { "a", "b", "c" }) ids.Add(await a.Submit(new SubmitRequest(hash, [$"on-{node}"], null, null, On: node)));
        foreach (var (id, node) in ids.Zip(new[] { "a", "b", "c" }))
        {
            Assert.StartsWith($"{node}-", id);
            var stdout = new MemoryStream();
            Assert.Equal(1, await b.CopyOutput(id, stdout, Stream.Null, follow: true));
            Assert.StartsWith($"arg 1: on-{node}\n", System.Text.Encoding.UTF8.GetString(stdout.ToArray()));
        }

        var spinner = await a.Submit(new SubmitRequest(await a.UploadModule(File.ReadAllBytes(Guests.Wasm("dirtier"))), ["--mib", "1", "--seconds", "120"], null, null, On: "b"));
        Assert.Equal(0, (await Kill(a, spinner)));

        var c = _cluster.Nodes[2].Process;
        var clock = Stopwatch.StartNew();
        c.Kill();
        c.WaitForExit();
        while (true)
        {
            var cluster = await a.Cluster();
            if (cluster.EnumerateArray().Any(m => m.GetProperty("name").GetString() == "c" && m.GetProperty("state").GetString() == "Down")) break;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), "c was not marked down");
            await Task.Delay(100);
        }
        output.WriteLine($"a marked c down {clock.ElapsedMilliseconds} ms after kill -9 (default: down after 3 s of silence)");
        var after = await b.Submit(new SubmitRequest(hash, ["still-here"], null, null, On: "a"));
        var text = new MemoryStream();
        Assert.Equal(1, await b.CopyOutput(after, text, Stream.Null, follow: true));
        Assert.Contains("still-here", System.Text.Encoding.UTF8.GetString(text.ToArray()));
        Assert.Equal("Finished", (await a.Process(ids[0])).GetProperty("state").GetString());
    }

    private static async Task<int> Kill(NodeClient client, string id)
    {
        await client.Kill(id);
        await client.CopyOutput(id, Stream.Null, Stream.Null, follow: true);
        return (await client.Process(id)).GetProperty("state").GetString() == "Killed" ? 0 : 1;
    }
}
