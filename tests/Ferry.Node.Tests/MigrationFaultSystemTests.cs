using System.Buffers.Binary;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Ferry.Mobility.Migration;
using Ferry.Node.Client;

namespace Ferry.Node.Tests;

/// <summary>
/// Live migration between real `ferry node` processes when things go wrong: the target node killed mid-migration (from
/// outside, and by itself at each stage through FERRY_CRASH_AS_TARGET_AT), and a peer that speaks the migration protocol
/// wrongly (invariant 1: never lost before commitment, never run twice).
/// </summary>
public sealed class MigrationFaultSystemTests : IDisposable
{
    private readonly NodeProcesses _cluster = new();

    // Long enough (with the sleeps) to outlast every migration attempt here.
    private static readonly string[] Arguments = ["--mib", "8", "--iterations", "2500", "--writes-per-iteration", "200", "--report", "250", "--sleep-us", "1000"];

    private NodeClient? _a;

    public void Dispose()
    {
        _a?.Dispose();
        _cluster.Dispose();
    }

    /// <summary>Nodes a (with <paramref name="aArguments"/> on its command line, its standard error kept) and b.</summary>
    private void StartTwoNodes(string[]? aArguments = null)
    {
        _cluster.Start("a", null, arguments: aArguments, captureErrors: true);
        _cluster.Start("b", _cluster.Nodes[0].Address);
    }

    /// <summary>Nodes a and b, and a dirtier running on a: the client of a (disposed with the test), the module hash, the process id.</summary>
    private async Task<(NodeClient A, string Hash, string Id)> StartDirtierOnA(string[]? aArguments = null)
    {
        StartTwoNodes(aArguments);
        var a = _a = _cluster.Client(0);
        var hash = await a.UploadModule(File.ReadAllBytes(Ferry.Tests.Shared.Guests.Wasm("dirtier")));
        return (a, hash, await a.Submit(new SubmitRequest(hash, [.. Arguments], null, null)));
    }

    private static Ferry.Tests.Shared.Guests.Result Native() =>
        Ferry.Tests.Shared.Guests.Run(new System.Diagnostics.ProcessStartInfo(Ferry.Tests.Shared.Guests.Native("dirtier"), Arguments));

    /// <summary>The process runs to its end on node a, with the output and exit code of a native run: nothing lost, nothing twice.</summary>
    private static Task AssertFinishesOnA(NodeClient a, string id) => AssertFinishesOn(a, id, "a");

    /// <summary>The process runs to its end on <paramref name="node"/> (asked through <paramref name="client"/>), with the output and exit code of a native run.</summary>
    private static async Task AssertFinishesOn(NodeClient client, string id, string node)
    {
        var output = new MemoryStream();
        var exit = await client.CopyOutput(id, output, Stream.Null, follow: true);
        var native = Native();
        Assert.Equal(native.ExitCode, exit);
        Assert.Equal(native.Text, Encoding.UTF8.GetString(output.ToArray()));
        Assert.Equal(node, (await client.Process(id)).GetProperty("node").GetString());
    }

    /// <summary>
    /// A dirtier on a moving to b by post-copy at 2 MB/s, once its push has begun (the push of 8 MiB takes four seconds):
    /// a's client, the process id, and the migration's last line to come.
    /// </summary>
    private async Task<(NodeClient A, string Id, Task<JsonElement> Migration)> PushingFromAToB(string[]? aArguments = null)
    {
        var (a, _, id) = await StartDirtierOnA(aArguments);
        await Task.Delay(300);
        var pushing = new TaskCompletionSource();
        var migration = a.Migrate(id, new MigrateRequest("b", "post-copy", BandwidthMBps: 2), line =>
        {
            if (line.TryGetProperty("progress", out var progress) && progress.GetProperty("stage").GetString() == nameof(MigrationStage.PostCopyPush)) pushing.TrySetResult();
        });
        await pushing.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return (a, id, migration);
    }

    [Fact]
    public async Task Killing_the_target_node_during_pre_copy_aborts_and_the_process_finishes_on_the_source()
    {
        var (a, hash, id) = await StartDirtierOnA();
        await Task.Delay(300);
        // At 2 MB/s the 8 MiB of round 0 take four seconds: the kill lands inside the iterative pre-copy. It waits for that
        // stage, not a fixed second: in a loaded CI run the migration had not yet connected to b a second later.
        var copying = new TaskCompletionSource();
        var migration = a.Migrate(id, new MigrateRequest("b", "pre-copy", BandwidthMBps: 2), line =>
        {
            if (line.TryGetProperty("progress", out var progress) && progress.GetProperty("stage").GetString() == nameof(MigrationStage.IterativePreCopy)) copying.TrySetResult();
        });
        await copying.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(300);
        _cluster.Nodes[1].Process.Kill();
        var last = await migration.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(last.TryGetProperty("error", out var error), $"the migration did not fail: {last}");
        Assert.False(last.GetProperty("committed").GetBoolean());
        Assert.Equal("IterativePreCopy", last.GetProperty("stage").GetString());
        Assert.Contains("rolled back", error.GetString());

        await AssertFinishesOnA(a, id);
    }

    [Fact]
    public async Task Killing_the_source_node_in_post_copys_window_is_reported_on_the_target_as_a_lost_process()
    {
        // The kill lands inside the window of dependence on the source.
        var (_, id, migration) = await PushingFromAToB();
        using var b = _cluster.Client(1);
        var state = await WaitForState(b, id, s => s is not ("InDoubt" or ""));
        Assert.NotEqual("Lost", state.GetProperty("state").GetString());
        _cluster.Nodes[0].Process.Kill();
        await migration.ContinueWith(_ => { });

        var lost = await WaitForState(b, id, s => s == "Lost");
        Assert.Contains("post-copy lost its source", lost.GetProperty("error").GetString());
        var stderr = new MemoryStream();
        await b.CopyOutput(id, Stream.Null, stderr, follow: true);
        Assert.Contains("post-copy lost its source", Encoding.UTF8.GetString(stderr.ToArray()));
    }

    /// <summary>
    /// A source node asked to stop (SIGTERM) in post-copy's window waits for the push, the process's only memory, before it
    /// exits: the process finishes on the target with the output of a native run. It used to be lost there.
    /// </summary>
    [Fact]
    public async Task Stopping_the_source_node_in_post_copys_window_waits_for_the_push_and_the_process_finishes_on_the_target()
    {
        // The stop is asked for inside the window of dependence on the source.
        var (_, id, migration) = await PushingFromAToB();
        var source = _cluster.Nodes[0].Process;
        using (var signal = System.Diagnostics.Process.Start("kill", ["-TERM", source.Id.ToString()])) await signal.WaitForExitAsync();

        var last = await migration.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(last.TryGetProperty("report", out var report), $"the migration did not complete: {last}");
        Assert.True(report.GetProperty("postCopyFrames").GetInt64() > 0);
        await source.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, source.ExitCode);

        using var b = _cluster.Client(1);
        await AssertFinishesOn(b, id, "b");
    }

    /// <summary>
    /// A source node started with --drain-timeout 1 and asked to stop in post-copy's window waits a second for the push (of
    /// four), says so, then gives it up and exits: the process is reported lost on its target, as documented, and the
    /// migration fails after its commitment. A value out of range keeps the node from starting, with the reason.
    /// </summary>
    [Fact]
    public async Task A_stopping_source_node_gives_up_a_push_after_its_drain_timeout_and_the_loss_is_reported_on_the_target()
    {
        var (_, id, migration) = await PushingFromAToB(["--drain-timeout", "1"]);
        var source = _cluster.Nodes[0].Process;
        using (var signal = System.Diagnostics.Process.Start("kill", ["-TERM", source.Id.ToString()])) await signal.WaitForExitAsync();

        var last = await migration.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(last.TryGetProperty("report", out _), $"the push of four seconds completed: {last}");
        Assert.Contains("the target committed, then the connection failed in stage PostCopyPush", last.ToString());
        await source.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, source.ExitCode);
        var errors = _cluster.Errors(0);
        Assert.Contains("waiting up to 1 s for 1 migration(s) to finish", errors);
        Assert.Contains("abandoning 1 migration(s) still under way after 1 s", errors);
        using var b = _cluster.Client(1);
        var lost = await WaitForState(b, id, s => s == "Lost");
        Assert.Contains("post-copy lost its source", lost.GetProperty("error").GetString());

        await AssertNodeRefusesToStart("--drain-timeout", "-1", "--drain-timeout -1: expected 0 to 3600 seconds");
    }

    /// <summary>A node started with <paramref name="option"/> <paramref name="value"/> does not start, and says <paramref name="reason"/>.</summary>
    private static async Task AssertNodeRefusesToStart(string option, string value, string reason)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "node", "start", "--name", "z", "--listen", "127.0.0.1:0", option, value },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using var refused = System.Diagnostics.Process.Start(start)!;
        var error = await refused.StandardError.ReadToEndAsync();
        await refused.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains(reason, error);
    }

    /// <summary>
    /// A process moved by post-copy and moved on while its memory is still arriving waits for the last frame before it
    /// goes: sent on at once, the frames still at its first source would have gone as zeros. It finishes back on a with the
    /// output of a native run.
    /// </summary>
    [Fact]
    public async Task Moving_a_process_on_while_its_post_copy_push_is_under_way_waits_for_the_push_and_loses_nothing()
    {
        // The second move is asked for inside the push.
        var (a, id, first) = await PushingFromAToB();
        using var b = _cluster.Client(1);
        await WaitForState(b, id, s => s is not ("InDoubt" or ""));
        var second = await b.Migrate(id, new MigrateRequest("a", "pre-copy")).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(second.TryGetProperty("report", out _), $"the second move did not complete: {second}");
        var firstLast = await first.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(firstLast.TryGetProperty("report", out var report), $"the first move did not complete: {firstLast}");
        Assert.True(report.GetProperty("postCopyFrames").GetInt64() > 0);
        await AssertFinishesOnA(a, id);
    }

    /// <summary>The process as node <paramref name="node"/> describes it, once its state satisfies <paramref name="wanted"/> (within 30 s).</summary>
    private static async Task<JsonElement> WaitForState(NodeClient node, string id, Func<string, bool> wanted)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var described = await node.Process(id);
                last = described.GetProperty("state").GetString() ?? "";
                if (wanted(last)) return described;
            }
            catch (NodeRequestException)
            {
                // Not there yet.
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"process {id} is still {(last.Length == 0 ? "unknown" : last)}");
    }

    [Fact]
    public async Task A_process_holding_a_directory_the_target_does_not_allow_is_refused_there_and_finishes_on_the_source()
    {
        var onlyA = Directory.CreateTempSubdirectory("ferry-only-a-");
        try
        {
            _cluster.Start("a", null, arguments: ["--allow-dir", onlyA.FullName]);
            _cluster.Start("b", _cluster.Nodes[0].Address);
            var a = _a = _cluster.Client(0);
            var hash = await a.UploadModule(File.ReadAllBytes(Ferry.Tests.Shared.Guests.Wasm("dirtier")));
            var id = await a.Submit(new SubmitRequest(hash, [.. Arguments], null, [$"{onlyA.FullName}::/data"]));
            await Task.Delay(300);

            // A peer cannot widen the sandbox: b grants what it would have granted at submission, and no more.
            var last = await a.Migrate(id, new MigrateRequest("b", "pre-copy"));
            Assert.True(last.TryGetProperty("error", out var error), $"the migration did not fail: {last}");
            Assert.False(last.GetProperty("committed").GetBoolean());
            Assert.Contains($"the directory {onlyA.FullName} is outside node b's allowed directories", error.GetString());
            // Refused as it is offered, before any memory moves.
            Assert.Equal(nameof(MigrationStage.Reservation), last.GetProperty("stage").GetString());

            await AssertFinishesOnA(a, id);
        }
        finally
        {
            onlyA.Delete(recursive: true);
        }
    }

    public static TheoryData<string, MigrationStage> StagesBeforeCommitment()
    {
        var data = new TheoryData<string, MigrationStage>();
        foreach (var strategy in new[] { "stop-copy", "pre-copy", "post-copy", "hybrid" })
        {
            data.Add(strategy, MigrationStage.Reservation);
            if (strategy is "pre-copy" or "hybrid") data.Add(strategy, MigrationStage.IterativePreCopy);
            data.Add(strategy, MigrationStage.StopAndCopy);
            data.Add(strategy, MigrationStage.Commitment);
        }
        return data;
    }

    /// <summary>Node a, node b set to kill itself (SIGKILL) when a migration it receives enters <paramref name="stage"/>, and a dirtier on a.</summary>
    private async Task<(NodeClient A, string Id)> StartDirtierBesideACrashingTarget(MigrationStage stage)
    {
        _cluster.Start("a", null);
        _cluster.Start("b", _cluster.Nodes[0].Address, new Dictionary<string, string> { ["FERRY_CRASH_AS_TARGET_AT"] = stage.ToString() });
        var a = _a = _cluster.Client(0);
        var hash = await a.UploadModule(File.ReadAllBytes(Ferry.Tests.Shared.Guests.Wasm("dirtier")));
        var id = await a.Submit(new SubmitRequest(hash, [.. Arguments], null, null));
        await Task.Delay(300);
        return (a, id);
    }

    [Theory]
    [MemberData(nameof(StagesBeforeCommitment))]
    public async Task A_target_node_killed_at_any_stage_before_commitment_leaves_the_process_to_finish_on_the_source(string strategy, MigrationStage stage)
    {
        var (a, id) = await StartDirtierBesideACrashingTarget(stage);
        var last = await a.Migrate(id, new MigrateRequest("b", strategy)).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(_cluster.Nodes[1].Process.WaitForExit(10_000), "node b did not die at the injected stage");
        Assert.True(last.TryGetProperty("error", out var error), $"the migration did not fail: {last}");
        Assert.False(last.GetProperty("committed").GetBoolean());
        Assert.Contains("rolled back", error.GetString());
        // The source may have written a short image and be waiting for the commitment when the target dies on its first piece.
        var failedAt = Enum.Parse<MigrationStage>(last.GetProperty("stage").GetString()!);
        Assert.InRange(failedAt, stage, MigrationStage.Commitment);

        await AssertFinishesOnA(a, id);
    }

    [Theory]
    [InlineData("stop-copy")]
    [InlineData("pre-copy")]
    [InlineData("post-copy")]
    [InlineData("hybrid")]
    public async Task A_target_node_killed_at_activation_takes_the_committed_process_with_it_and_the_source_never_runs_it_again(string strategy)
    {
        var (a, id) = await StartDirtierBesideACrashingTarget(MigrationStage.Activation);
        var last = await a.Migrate(id, new MigrateRequest("b", strategy)).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(_cluster.Nodes[1].Process.WaitForExit(10_000), "node b did not die at activation");
        if (strategy is "post-copy" or "hybrid")
        {
            // The source still served its memory: it learns of the loss, and says so.
            Assert.True(last.TryGetProperty("error", out _), $"the loss was not reported: {last}");
            Assert.True(last.GetProperty("committed").GetBoolean());
        }
        else
        {
            // The go-ahead was the source's last word: the process was the target's, and it died with its node.
            Assert.True(last.TryGetProperty("report", out _), $"the migration did not commit: {last}");
        }
        await Task.Delay(500);
        var local = await LocalProcesses(0);
        Assert.DoesNotContain(local.EnumerateArray(), p => p.GetProperty("id").GetString() == id);
    }

    /// <summary>The processes node <paramref name="index"/> itself holds, not the cluster's view.</summary>
    private async Task<JsonElement> LocalProcesses(int index)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{_cluster.Nodes[index].Address}") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(_cluster.KeyFile).Trim());
        return await http.GetFromJsonAsync<JsonElement>("/v1/processes?scope=local");
    }

    /// <summary>
    /// A peer that falls silent in the middle of a frame is taken for dead after the node's --peer-silence (here 2 s, not
    /// the default 30): the node closes the connection. A value out of range keeps the node from starting, with the reason.
    /// </summary>
    [Fact]
    public async Task A_peer_silent_mid_frame_is_dropped_after_the_nodes_peer_silence_and_a_bad_value_is_refused()
    {
        _cluster.Start("a", null, arguments: ["--peer-silence", "2"]);
        using var peer = await Connect(0);
        var stream = peer.GetStream();
        await stream.WriteAsync(Frame((byte)MigrationFrame.Offer, new byte[60]).AsMemory(0, 20));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var buffer = new byte[256];
        try
        {
            while (await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(25)) > 0)
            {
            }
        }
        catch (IOException)
        {
            // Closed by a reset rather than an orderly end: closed all the same.
        }
        Assert.InRange(clock.Elapsed.TotalSeconds, 1, 20);

        await AssertNodeRefusesToStart("--peer-silence", "0", "--peer-silence 0: expected 1 to 3600 seconds");
    }

    public static TheoryData<string, string> BadPeers => new()
    {
        { "unknown frame type", "unknown frame type 99" },
        { "oversized length", "exceeds the limit" },
        { "wrong order", "expected Offer, received Image" },
        { "bad checksum", "fails its checksum" },
        { "short offer", "an offer of 3 bytes" },
    };

    [Theory]
    [MemberData(nameof(BadPeers))]
    public async Task A_peer_that_breaks_the_protocol_is_told_why_and_disturbs_no_process_or_migration(string breakage, string reason)
    {
        var (a, hash, id) = await StartDirtierOnA();

        using var peer = await Connect(1);
        var stream = peer.GetStream();
        var frame = breakage switch
        {
            "unknown frame type" => Frame(99, [1, 2, 3]),
            "oversized length" => [(byte)MigrationFrame.Offer, 0, 0, 0, 0x40],
            "wrong order" => Frame((byte)MigrationFrame.Image, new byte[100]),
            "bad checksum" => Corrupt(Frame((byte)MigrationFrame.Offer, new byte[53])),
            _ => Frame((byte)MigrationFrame.Offer, [1, 2, 3]),
        };
        await stream.WriteAsync(frame);
        Assert.Contains(reason, await ReadAbort(stream));

        // Meanwhile a real migration between the same nodes goes through, and the process's output is whole.
        var last = await a.Migrate(id, new MigrateRequest("b", "pre-copy"));
        Assert.True(last.TryGetProperty("report", out _), $"the migration failed: {last}");
        var output = new MemoryStream();
        var exit = await a.CopyOutput(id, output, Stream.Null, follow: true);
        var native = Native();
        Assert.Equal(native.ExitCode, exit);
        Assert.Equal(native.Text, Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public async Task A_replayed_migration_id_is_refused()
    {
        var (a, hash, id) = await StartDirtierOnA();
        await Task.Delay(200);
        var last = await a.Migrate(id, new MigrateRequest("b", "stop-copy"));
        var migration = Guid.Parse(last.GetProperty("report").GetProperty("id").GetString()!);

        using var peer = await Connect(1);
        // The fixed part, then the resources it needs: no directory, no listener.
        var offer = new byte[53 + 2 + 2];
        migration.TryWriteBytes(offer);
        Convert.FromHexString(hash).CopyTo(offer, 16);
        offer[52] = (byte)MigrationStrategy.StopAndCopy;
        var channel = new MigrationChannel(peer.GetStream());
        await channel.SendAsync(MigrationFrame.Offer, offer);
        var (type, payload) = await channel.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(type == MigrationFrame.Refuse, $"{type}: {Encoding.UTF8.GetString(payload.Span)}");
        Assert.Contains($"replayed migration id {migration}", Encoding.UTF8.GetString(payload.Span));

        var output = new MemoryStream();
        Assert.Equal(0, await a.CopyOutput(id, output, Stream.Null, follow: true));
        Assert.Equal(Native().Text, Encoding.UTF8.GetString(output.ToArray()));
    }

    /// <summary>A connection to node <paramref name="index"/>'s migration port, past the authenticated hello.</summary>
    private async Task<TcpClient> Connect(int index)
    {
        var key = File.ReadAllText(_cluster.KeyFile).Trim();
        using var http = new HttpClient { BaseAddress = new Uri($"http://{_cluster.Nodes[index].Address}") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var node = await http.GetFromJsonAsync<JsonElement>("/v1/node");
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync("127.0.0.1", node.GetProperty("migrationPort").GetInt32());
        byte[] id = Encoding.UTF8.GetBytes("intruder"), source = Encoding.UTF8.GetBytes("a");
        var hello = new byte[8 + 32 + 2 + id.Length + 2 + source.Length + 1];
        "FERRYMIG"u8.CopyTo(hello);
        SHA256.HashData(Encoding.UTF8.GetBytes(key)).CopyTo(hello, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(40), (ushort)id.Length);
        id.CopyTo(hello, 42);
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(42 + id.Length), (ushort)source.Length);
        source.CopyTo(hello, 44 + id.Length);
        await client.GetStream().WriteAsync(hello);
        return client;
    }

    private static byte[] Frame(byte type, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = type;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), payload.Length);
        payload.CopyTo(frame, 5);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(5 + payload.Length), Ferry.Mobility.Snapshots.Crc32C.Of(frame.AsSpan(0, 5 + payload.Length)));
        return frame;
    }

    private static byte[] Corrupt(byte[] frame)
    {
        frame[10] ^= 0x5A;
        return frame;
    }

    /// <summary>The reason in the Abort frame the node answers with; the node then closes the connection.</summary>
    private static async Task<string> ReadAbort(NetworkStream stream)
    {
        var channel = new MigrationChannel(stream);
        var (type, payload) = await channel.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(MigrationFrame.Abort, type);
        return Encoding.UTF8.GetString(payload.Span);
    }
}
