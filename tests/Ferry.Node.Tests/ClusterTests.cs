using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Ferry.Node.Client;
using Ferry.Node.Cluster;
using Ferry.Tests.Shared;
using Xunit.Abstractions;

namespace Ferry.Node.Tests;

/// <summary>Three real nodes on 127.0.0.1 (in this process): membership, code on demand, a cluster-wide directory.</summary>
public sealed class ClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<DirectoryInfo> _data = [];
    private readonly List<FerryNode> _nodes = [];

    private async Task<FerryNode> Start(string name, FerryNode? seed)
    {
        var data = Directory.CreateTempSubdirectory($"ferry-cluster-{name}-");
        _data.Add(data);
        var node = await FerryNode.StartAsync(new NodeOptions
        {
            Name = name,
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            DataDirectory = data.FullName,
            Workers = 1,
            Join = seed?.Address.ToString(),
            Key = seed?.Key,
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
            SuspectAfter = TimeSpan.FromMilliseconds(600),
            DownAfter = TimeSpan.FromMilliseconds(1200),
        });
        _nodes.Add(node);
        return node;
    }

    public async Task InitializeAsync()
    {
        var a = await Start("a", null);
        var b = await Start("b", a);
        await Start("c", b);
    }

    public async Task DisposeAsync()
    {
        foreach (var node in _nodes) await node.DisposeAsync();
        foreach (var data in _data) data.Delete(true);
    }

    private static async Task Eventually(Func<bool> condition, TimeSpan limit, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < limit, $"{what} did not happen within {limit.TotalSeconds} s");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Nodes_joining_through_any_member_all_see_each_other_alive_with_their_load()
    {
        // A member can be known alive through gossip a heartbeat before its own load reaches a node: the full view is eventual.
        await Eventually(() => _nodes.All(n => n.Cluster.Members.Count(m => m.State == MemberState.Alive && m.Load is not null) == 3), TimeSpan.FromSeconds(5), "a full view with every member's load");
    }

    [Fact]
    public async Task A_node_that_stops_answering_is_marked_suspect_then_down_and_the_others_keep_serving()
    {
        await Eventually(() => _nodes.All(n => n.Cluster.Members.Count(m => m.State == MemberState.Alive) == 3), TimeSpan.FromSeconds(5), "a full view");
        var c = _nodes[2];
        _nodes.Remove(c);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await c.DisposeAsync();
        await Eventually(() => _nodes.All(n => n.Cluster.Find("c")?.State == MemberState.Down), TimeSpan.FromSeconds(5), "c marked down");
        output.WriteLine($"c marked down by a and b {clock.ElapsedMilliseconds} ms after it began to stop (down after 1,200 ms of silence)");
        using var client = new NodeClient(_nodes[0].Address.ToString(), _nodes[0].Key);
        var hash = await client.UploadModule(File.ReadAllBytes(Guests.Wasm("hello")));
        var id = await client.Submit(new SubmitRequest(hash, [], null, null));
        Assert.Equal(0, await client.CopyOutput(id, Stream.Null, Stream.Null, follow: true));
        var refused = await Assert.ThrowsAsync<NodeRequestException>(() => client.Submit(new SubmitRequest(hash, [], null, null, On: "c")));
        Assert.Equal(503, refused.Status);
        var unknown = await Assert.ThrowsAsync<NodeRequestException>(() => client.Submit(new SubmitRequest(hash, [], null, null, On: "zz")));
        Assert.Equal(404, unknown.Status);
        Assert.Contains("no node named zz", unknown.Message);
    }

    [Fact]
    public async Task Code_on_demand_moves_a_module_once_per_node_and_any_node_answers_for_any_process()
    {
        await Eventually(() => _nodes.All(n => n.Cluster.Members.Count(m => m.State == MemberState.Alive) == 3), TimeSpan.FromSeconds(5), "a full view");
        var module = File.ReadAllBytes(Guests.Wasm("args_env"));
        using var a = new NodeClient(_nodes[0].Address.ToString(), _nodes[0].Key);
        using var b = new NodeClient(_nodes[1].Address.ToString(), _nodes[1].Key);
        var hash = await a.UploadModule(module);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++) ids.Add(await a.Submit(new SubmitRequest(hash, [$"run{i}"], null, null, On: "c")));
        Assert.All(ids, id => Assert.StartsWith("c-", id));
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            var stdout = new MemoryStream();
            Assert.Equal(1, await b.CopyOutput(id, stdout, Stream.Null, follow: true));
            Assert.StartsWith($"arg 1: run{i}\n", System.Text.Encoding.UTF8.GetString(stdout.ToArray()));
        }
        Assert.Equal(module.Length, _nodes[2].ModuleBytesPulled);
        Assert.Equal(0, _nodes[0].ModuleBytesPulled);
        var listed = await b.Processes();
        Assert.All(ids, id => Assert.Contains(listed.EnumerateArray(), p => p.GetProperty("id").GetString() == id));
        Assert.Equal("Finished", (await b.Process(ids[0])).GetProperty("state").GetString());
    }

    [Fact]
    public async Task A_node_refuses_a_module_whose_bytes_do_not_match_the_hash_it_asked_for()
    {
        var genuine = File.ReadAllBytes(Guests.Wasm("hello"));
        var impostor = File.ReadAllBytes(Guests.Wasm("args_env"));
        var hash = Ferry.Mobility.Snapshots.SnapshotWriter.Hash(genuine);
        var (liar, port) = StartHttpListener();
        var serving = Task.Run(async () =>
        {
            var context = await liar.GetContextAsync();
            context.Response.ContentType = "application/wasm";
            await context.Response.OutputStream.WriteAsync(impostor);
            context.Response.Close();
        });
        using var http = new HttpClient { BaseAddress = _nodes[0].Address };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _nodes[0].Key);
        var response = await http.PostAsJsonAsync("/v1/processes", new SubmitRequest(hash, [], null, null, Source: $"http://127.0.0.1:{port}/"));
        await serving;
        liar.Stop();
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("refused", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
        Assert.False(_nodes[0].Code.Contains(hash));
    }

    /// <summary>
    /// An HttpListener on a free port of 127.0.0.1. It cannot ask for port 0, and a port found free may be taken before it
    /// binds (other tests open connections meanwhile), so it tries another then.
    /// </summary>
    private static (HttpListener Listener, int Port) StartHttpListener()
    {
        for (var attempt = 1; ; attempt++)
        {
            int port;
            using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                return (listener, port);
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                listener.Close();
            }
        }
    }
}
