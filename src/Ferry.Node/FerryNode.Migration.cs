using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Ferry.Mobility;
using Ferry.Mobility.Hosting;
using Ferry.Mobility.Migration;
using Ferry.Node.Cluster;
using Ferry.Node.Processes;
using Ferry.Wasi.Resources;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Ferry.Node;

/// <summary>The body of POST /v1/processes/{id}/migrate.</summary>
public sealed record MigrateRequest(string To, string? Strategy = null, double? MaxDowntimeMs = null, int? MaxRounds = null, double? BandwidthMBps = null, bool AutoConverge = false, bool WholeFrames = false);

/// <summary>A process that left this node: where it went, and the output it wrote here (served to readers that are behind).</summary>
internal sealed record MovedProcess(string Node, OutputLog Output);

public sealed partial class FerryNode
{
    private static ReadOnlySpan<byte> HelloMagic => "FERRYMIG"u8;
    /// <summary>How long a migrated process's log holds back readers behind its start for the source's earlier output.</summary>
    private static readonly TimeSpan EarlierOutputWait = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, MovedProcess> _moved = new();
    /// <summary>This node's decisions as a migration source, by migration id: true committed, false aborted.</summary>
    private readonly ConcurrentDictionary<Guid, bool> _decisions = new();
    /// <summary>Migration ids this node has admitted as a target: a second offer with one is a replay.</summary>
    private readonly ConcurrentDictionary<Guid, byte> _admitted = new();
    private TcpListener? _migrationListener;
    private readonly CancellationTokenSource _stopping = new();
    /// <summary>Migrations this node sources, by process id (one at a time per process), for a stop to wait on.</summary>
    private readonly ConcurrentDictionary<string, OutgoingMigration> _outgoing = new();

    /// <param name="Abandon">Ends the part after commitment (post-copy's push) when the node can wait for it no longer.</param>
    /// <param name="Done">Completes when the migration has ended, whatever its outcome.</param>
    private sealed record OutgoingMigration(string ProcessId, string To, CancellationTokenSource Abandon, Task Done);

    /// <summary>The TCP port migrations to this node connect to.</summary>
    public int MigrationPort => _migrationListener is { } listener ? ((IPEndPoint)listener.LocalEndpoint).Port : 0;

    private void StartMigrationListener()
    {
        var address = IPAddress.TryParse(Address.Host, out var parsed) ? parsed : IPAddress.Loopback;
        _migrationListener = new TcpListener(address, _options.MigrationPort);
        _migrationListener.Start();
        _ = Task.Run(AcceptMigrationsAsync);
        // Compiled code belongs to the process: in-process clusters (`ferry demo`, tests) warm up once, with the first node.
        if (Interlocked.Exchange(ref _warmUpStarted, 1) == 0) _warmUp = Task.Run(WarmUpAsync);
    }

    private static int _warmUpStarted;
    private Task _warmUp = Task.CompletedTask;

    /// <summary>
    /// Compiles both sides of a migration before the first real one (see <see cref="MigrationWarmUp"/>), then the rest of
    /// Ferry's code (see <see cref="Precompiler"/>); a failure costs only that.
    /// </summary>
    private async Task WarmUpAsync()
    {
        try
        {
            await MigrationWarmUp.RunAsync(_stopping.Token);
            // The commitment records its decision in _decisions inside the downtime; the first insertion compiled for 3.4 ms there.
            Precompiler.Run([typeof(Ferry.Wasm.Module).Assembly, typeof(Ferry.Engine.Store).Assembly, typeof(Ferry.Wasi.WasiProcess).Assembly, typeof(MigrationSource).Assembly, typeof(FerryNode).Assembly],
                [typeof(ConcurrentDictionary<Guid, bool>), typeof(ConcurrentDictionary<Guid, byte>)], _stopping.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or MigrationAbortedException or MigrationAfterCommitException)
        {
            if (!_stopping.IsCancellationRequested) Console.Error.WriteLine($"ferry node {Name}: the migration warm-up failed, so the first migration will be slower: {e.Message}");
        }
    }

    private void StopMigrationListener()
    {
        _stopping.Cancel();
        _migrationListener?.Stop();
    }

    /// <summary>
    /// Waits, as the node stops, for the migrations it sources: those not yet committed abort at once (their processes
    /// stay here, to be saved); a committed post-copy push is the only copy of its process's memory, so it is given up to
    /// <see cref="NodeOptions.MigrationDrainTimeout"/> to finish before it is abandoned and the process lost on its target.
    /// </summary>
    private async Task DrainOutgoingMigrationsAsync()
    {
        var outgoing = _outgoing.Values.ToList();
        if (outgoing.Count == 0) return;
        var all = Task.WhenAll(outgoing.Select(o => o.Done));
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromMilliseconds(200))) == all) return;
        var left = outgoing.Where(o => !o.Done.IsCompleted).ToList();
        Console.Error.WriteLine($"ferry node {Name}: waiting up to {_options.MigrationDrainTimeout.TotalSeconds:0.#} s for {left.Count} migration(s) to finish: {string.Join(", ", left.Select(o => $"{o.ProcessId} to {o.To}"))}");
        if (await Task.WhenAny(all, Task.Delay(_options.MigrationDrainTimeout)) == all) return;
        left = outgoing.Where(o => !o.Done.IsCompleted).ToList();
        Console.Error.WriteLine($"ferry node {Name}: abandoning {left.Count} migration(s) still under way after {_options.MigrationDrainTimeout.TotalSeconds:0.#} s: {string.Join(", ", left.Select(o => $"{o.ProcessId} to {o.To}"))}; a post-copy process among them is lost on its target");
        foreach (var migration in left) await migration.Abandon.CancelAsync();
        await all;
    }

    /// <summary>
    /// Waits, as the node stops, for the post-copy pushes still bringing its processes' memory (up to
    /// <see cref="NodeOptions.MigrationDrainTimeout"/>): saved before its last frame came, a process would hold zeros there.
    /// </summary>
    private async Task DrainIncomingPushesAsync()
    {
        var arriving = _processes.Values.Where(p => p.Pager is { Completion.IsCompleted: false }).ToList();
        if (arriving.Count == 0) return;
        Console.Error.WriteLine($"ferry node {Name}: waiting up to {_options.MigrationDrainTimeout.TotalSeconds:0.#} s for the memory of {arriving.Count} process(es) still arriving by post-copy: {string.Join(", ", arriving.Select(p => p.Id))}");
        var all = Task.WhenAll(arriving.Select(p => p.Pager!.Completion));
        await Task.WhenAny(all, Task.Delay(_options.MigrationDrainTimeout));
    }

    private static string StrategyName(MigrationStrategy strategy) => strategy switch
    {
        MigrationStrategy.StopAndCopy => "stop-copy",
        MigrationStrategy.PreCopy => "pre-copy",
        MigrationStrategy.PostCopy => "post-copy",
        _ => "hybrid",
    };

    /// <summary>Parses stop-copy, pre-copy, post-copy or hybrid.</summary>
    public static MigrationStrategy? ParseStrategy(string? name) => name switch
    {
        null or "pre-copy" => MigrationStrategy.PreCopy,
        "stop-copy" or "stop-and-copy" => MigrationStrategy.StopAndCopy,
        "post-copy" => MigrationStrategy.PostCopy,
        "hybrid" => MigrationStrategy.Hybrid,
        _ => null,
    };

    private void MapMigrationApi(WebApplication app)
    {
        app.MapPost("/v1/processes/{id}/stop", (string id, HttpContext context) => Control(id, context, p => p.Stop()));
        app.MapPost("/v1/processes/{id}/continue", (string id, long? instructions, HttpContext context) => Control(id, context, p => p.Continue(instructions)));
        app.MapPut("/v1/processes/{id}/location", (string id, LocationUpdate update) =>
        {
            // The home node's pointer: the process now runs at update.Node (unless it has come back here).
            if (_processes.TryGetValue(id, out var local) && !local.Ended) return Results.NoContent();
            if (update.Node == Name) return Results.NoContent();
            _moved.AddOrUpdate(id, _ => new MovedProcess(update.Node, new OutputLog(0)), (_, old) => old with { Node = update.Node });
            return Results.NoContent();
        });
        app.MapPut("/v1/processes/{id}/earlier-output", async (string id, HttpRequest request) =>
        {
            if (!_processes.TryGetValue(id, out var process)) return UnknownProcess(id);
            var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            body.Position = 0;
            try
            {
                process.Output.LoadEarlier(body);
            }
            catch (Exception e) when (e is EndOfStreamException or InvalidDataException)
            {
                process.Output.StopAwaitingEarlier();
                return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: $"the earlier output of {id} is malformed: {e.Message}");
            }
            return Results.NoContent();
        });
        app.MapGet("/v1/migrations/{migration}", (Guid migration) =>
            Results.Ok(new { decision = _decisions.TryGetValue(migration, out var committed) ? committed ? "committed" : "aborted" : "unknown" }));
        app.MapPost("/v1/processes/{id}/migrate", async (string id, MigrateRequest request, HttpContext context) =>
        {
            if (!_processes.ContainsKey(id) && Elsewhere(id) is { } owner)
            {
                await RelayStream(context, owner, request);
                return;
            }
            await MigrateAsync(id, request, context);
        });
    }

    public sealed record LocationUpdate(string Node);

    private Task<IResult> Control(string id, HttpContext context, Action<HostedProcess> action)
    {
        if (Elsewhere(id) is { } owner) return Proxy(context, owner);
        if (!_processes.TryGetValue(id, out var process)) return Task.FromResult(UnknownProcess(id));
        action(process);
        return Task.FromResult(Results.Ok(Describe(process)));
    }

    /// <summary>Forwards a streaming request (a migration's progress) to the member that has the process, line by line.</summary>
    private async Task RelayStream(HttpContext context, Member owner, MigrateRequest migration)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(owner.Address), context.Request.Path + context.Request.QueryString))
        {
            Content = JsonContent.Create(migration),
        };
        try
        {
            using var response = await _peers.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
            context.Response.StatusCode = (int)response.StatusCode;
            context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
            await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            var buffer = new byte[8192];
            int read;
            while ((read = await body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (HttpRequestException e)
        {
            await Results.Problem(statusCode: StatusCodes.Status502BadGateway, title: $"node {owner.Name} did not answer", detail: e.Message).ExecuteAsync(context);
        }
    }

    /// <summary>
    /// Source side: migrates a local process to another member, streaming progress as JSON lines and ending with the
    /// report (or the reason it did not move: the process then runs on here, untouched).
    /// </summary>
    private async Task MigrateAsync(string id, MigrateRequest request, HttpContext context)
    {
        async Task Fail(int status, string title) => await Results.Problem(statusCode: status, title: title).ExecuteAsync(context);
        if (!_processes.TryGetValue(id, out var process)) { await Fail(404, $"no process {id}"); return; }
        // One migration at a time: two would harvest each other's dirty frames.
        if (!process.TryBeginMigration()) { await Fail(409, $"process {id} is {process.State}{(process.Ended || process.State == ProcessState.InDoubt ? "" : " and already migrating")}: it cannot migrate"); return; }
        try
        {
            await MigrateClaimedAsync(id, process, request, context);
        }
        finally
        {
            process.EndMigration();
        }
    }

    /// <summary>
    /// The slowest memory transfer a migration may be limited to: a 1 MiB Frames message then leaves the target without a
    /// frame for a third of its patience (<see cref="NodeOptions.PeerSilence"/>, 10 s of the default 30) before it takes
    /// the source for dead. Computed from this node's patience: the target's is taken to be the same.
    /// </summary>
    private double MinimumBandwidthMBps => 3.0 / _options.PeerSilence.TotalSeconds;

    /// <summary>How long a migration waits for its process's memory to finish arriving from the move before.</summary>
    private static readonly TimeSpan ArrivalWait = TimeSpan.FromSeconds(30);

    /// <summary>Why the request's migration settings make no sense, or null: refused up front rather than read as something else.</summary>
    private string? SettingsProblem(MigrateRequest request) => request switch
    {
        { MaxDowntimeMs: { } ms } when !(ms > 0 && ms <= 3_600_000) => $"max downtime must be above 0 ms and at most an hour, not {ms} ms",
        { MaxRounds: < 1 } => $"max rounds must be at least 1, not {request.MaxRounds}",
        { BandwidthMBps: { } mbps } when !(mbps == 0 || mbps >= MinimumBandwidthMBps && double.IsFinite(mbps)) =>
            $"bandwidth must be 0 (unlimited) or at least {MinimumBandwidthMBps} MB/s, not {mbps} MB/s: below that, a target takes the silent link for a dead one",
        _ => null,
    };

    /// <summary>The source side once <paramref name="process"/> is claimed for this migration.</summary>
    private async Task MigrateClaimedAsync(string id, HostedProcess process, MigrateRequest request, HttpContext context)
    {
        async Task Fail(int status, string title) => await Results.Problem(statusCode: status, title: title).ExecuteAsync(context);
        if (ParseStrategy(request.Strategy) is not { } strategy) { await Fail(400, $"unknown strategy {request.Strategy}: stop-copy, pre-copy, post-copy or hybrid"); return; }
        if (request.To == Name) { await Fail(400, $"process {id} already runs on {Name}"); return; }
        if (Cluster.Find(request.To) is not { } member) { await Fail(404, $"no node named {request.To} in the cluster"); return; }
        if (member.State == MemberState.Down) { await Fail(503, $"node {request.To} is down"); return; }
        if (SettingsProblem(request) is { } problem) { await Fail(400, problem); return; }
        if (process.Pager is { Completion.IsCompleted: false } pager)
        {
            // Moved here by post-copy and still receiving its memory: it moves on once every frame is in.
            try
            {
                await pager.Completion.WaitAsync(ArrivalWait, context.RequestAborted);
            }
            catch (TimeoutException)
            {
                await Fail(409, $"process {id} is still receiving its memory from its previous move after {ArrivalWait.TotalSeconds:0} s: try again once it has arrived");
                return;
            }
            catch (PostCopySourceLostException e)
            {
                await Fail(409, $"process {id} lost its memory with its previous source: {e.Message}");
                return;
            }
        }
        var options = new MigrationOptions
        {
            Strategy = strategy,
            MaxDowntime = TimeSpan.FromMilliseconds(request.MaxDowntimeMs ?? 20),
            MaxRounds = request.MaxRounds ?? 30,
            BandwidthBytesPerSecond = (long)((request.BandwidthMBps ?? 0) * 1_000_000),
            AutoConverge = request.AutoConverge,
            StopDeltas = !request.WholeFrames,
            PeerSilence = _options.PeerSilence,
        };

        TcpClient connection;
        try
        {
            var node = await _peers.GetFromJsonAsync<JsonElement>(new Uri(new Uri(member.Address), "/v1/node"), context.RequestAborted);
            var port = node.GetProperty("migrationPort").GetInt32();
            connection = new TcpClient { NoDelay = true };
            await connection.ConnectAsync(new Uri(member.Address).Host, port, context.RequestAborted);
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            await Fail(502, $"node {request.To} cannot take a migration: {e.Message}");
            return;
        }

        context.Response.ContentType = "application/x-ndjson";
        var lines = Channel.CreateUnbounded<string>();
        var writer = Task.Run(async () =>
        {
            await foreach (var line in lines.Reader.ReadAllAsync())
            {
                await context.Response.WriteAsync(line + "\n");
                await context.Response.Body.FlushAsync();
            }
        });
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web) { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
        var progress = new LineProgress(lines.Writer, json);
        process.Committed = (p, migration) =>
        {
            _decisions[migration] = true;
            p.MovedTo = request.To;
            _moved[p.Id] = new MovedProcess(request.To, p.Output);
        };
        process.Aborted = (_, migration) => _decisions[migration] = false;
        using var abandon = new CancellationTokenSource();
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var outgoing = new OutgoingMigration(id, request.To, abandon, ended.Task);
        _outgoing[id] = outgoing;
        try
        {
            using (connection)
            {
                try
                {
                    var stream = connection.GetStream();
                    await stream.WriteAsync(Hello(id, process.StopRequested), context.RequestAborted);
                    var report = await MigrationSource.MigrateAsync(stream, process, options, progress, _stopping.Token, abandon.Token);
                    lines.Writer.TryWrite(JsonSerializer.Serialize(new { report = Describe(report, Name, request.To) }, json));
                }
                catch (MigrationAbortedException e)
                {
                    lines.Writer.TryWrite(JsonSerializer.Serialize(new { error = e.Message, stage = e.Stage.ToString(), committed = false }, json));
                }
                catch (MigrationAfterCommitException e)
                {
                    lines.Writer.TryWrite(JsonSerializer.Serialize(new { error = e.Message, stage = e.Stage.ToString(), committed = true }, json));
                }
                catch (IOException e)
                {
                    // The hello could not be written: nothing was offered, the process never stopped.
                    lines.Writer.TryWrite(JsonSerializer.Serialize(new { error = $"the connection to {request.To} failed: {e.Message}", stage = nameof(MigrationStage.PreMigration), committed = false }, json));
                }
            }
            if (process.State == ProcessState.Moved)
            {
                // The source releases the process: its memory and handles go; its id now routes to the new node, and its
                // output so far follows it there, so that the node running it holds one continuous log.
                _processes.TryRemove(id, out _);
                process.Wasi.Dispose();
                process.Output.Close();
                if (HomeOf(id) is { } home && home != Name && home != request.To) _ = TellHome(home, id, request.To);
                lines.Writer.TryComplete();
                // Still part of the migration, which a stopping node waits for: this node holds the only copy of that output
                // (handed over unawaited, it was lost when the node stopped right after a post-copy push).
                await SendEarlierOutput(member, id, process.Output, abandon.Token);
            }
        }
        finally
        {
            _outgoing.TryRemove(new KeyValuePair<string, OutgoingMigration>(id, outgoing));
            ended.TrySetResult();
        }
        lines.Writer.TryComplete();
        await writer;
    }

    private static object Describe(MigrationReport r, string from, string to) => new
    {
        id = r.Id,
        from,
        to,
        strategy = StrategyName(r.Strategy),
        totalMs = r.Total.TotalMilliseconds,
        downtimeMs = r.Downtime.TotalMilliseconds,
        bytesSent = r.BytesSent,
        rounds = r.Rounds.Select(x => new { number = x.Number, frames = x.FramesSent, zeroSkipped = x.ZeroFramesSkipped, bytes = x.Bytes, ms = x.Duration.TotalMilliseconds, dirtied = x.DirtiedDuring }),
        stopFrames = r.StopFrames,
        stopDeltaFrames = r.StopDeltaFrames,
        zeroFramesSkipped = r.ZeroFramesSkipped,
        stateBytes = r.StateBytes,
        postCopyFrames = r.PostCopyFrames,
        postCopyFaults = r.PostCopyFaults,
        postCopyBlockedMs = r.PostCopyBlocked?.TotalMilliseconds,
        framesSentTwice = r.FramesSentTwice,
        pushResends = r.PushResends,
        sourceDependenceMs = r.SourceDependence.TotalMilliseconds,
        slowestThrottle = r.SlowestThrottle,
    };

    private sealed class LineProgress(ChannelWriter<string> lines, JsonSerializerOptions json) : IProgress<MigrationProgress>
    {
        private long _last;
        private int _stage = -1;

        public void Report(MigrationProgress value)
        {
            // At most ten lines a second, but every change of stage.
            var now = Environment.TickCount64;
            var changed = Interlocked.Exchange(ref _stage, (int)value.Stage) != (int)value.Stage;
            if (now - Interlocked.Read(ref _last) < 100 && !changed) return;
            Interlocked.Exchange(ref _last, now);
            lines.TryWrite(JsonSerializer.Serialize(new
            {
                progress = new
                {
                    stage = value.Stage.ToString(),
                    round = value.Round,
                    dirtyFrames = value.DirtyFrames,
                    framesLeft = value.FramesLeft,
                    mbPerSecond = value.BytesPerSecond / 1e6,
                    estimatedDowntimeMs = value.EstimatedDowntime == TimeSpan.MaxValue ? (double?)null : value.EstimatedDowntime.TotalMilliseconds,
                    bytesSent = value.BytesSent,
                },
            }, json));
        }
    }

    private static string? HomeOf(string id)
    {
        var dash = id.LastIndexOf('-');
        return dash > 0 ? id[..dash] : null;
    }

    /// <summary>Hands the output <paramref name="id"/> wrote here to the node it moved to, asking again for a while if that node does not know the process yet.</summary>
    private async Task SendEarlierOutput(Member target, string id, OutputLog output, CancellationToken cancel)
    {
        var saved = new MemoryStream();
        output.SaveTo(saved);
        var uri = new Uri(new Uri(target.Address), $"/v1/processes/{Uri.EscapeDataString(id)}/earlier-output");
        try
        {
            // The go-ahead is sent before the target registers the process: a loaded target answered "no process" once,
            // the output written here never reached it, and a reader that went on there skipped it. Asked again, briefly.
            for (var attempt = 0; ; attempt++)
            {
                using var response = await _peers.PutAsync(uri, new ByteArrayContent(saved.ToArray()), cancel);
                if (response.StatusCode != System.Net.HttpStatusCode.NotFound || attempt == EarlierOutputAttempts) return;
                await Task.Delay(TimeSpan.FromMilliseconds(20 << Math.Min(attempt, 5)), cancel);
            }
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            // The target stops waiting for it on its own (a stopping node gives the hand-over up with its drain's time).
        }
    }

    /// <summary>Retries of an earlier-output hand-over that found no process yet: about 4 s in all.</summary>
    private const int EarlierOutputAttempts = 10;

    private async Task TellHome(string home, string id, string node)
    {
        if (Cluster.Find(home) is not { State: not MemberState.Down } member) return;
        try
        {
            using var response = await _peers.PutAsJsonAsync(new Uri(new Uri(member.Address), $"/v1/processes/{Uri.EscapeDataString(id)}/location"), new LocationUpdate(node));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            // The home node is unreachable: requests still find the process through the chain of nodes it left.
        }
    }

    /// <summary>The hello before the protocol: magic, SHA-256 of the cluster key, process id, source node, whether it is stopped.</summary>
    private byte[] Hello(string id, bool stopped)
    {
        var idBytes = Encoding.UTF8.GetBytes(id);
        var nameBytes = Encoding.UTF8.GetBytes(Name);
        var hello = new byte[8 + 32 + 2 + idBytes.Length + 2 + nameBytes.Length + 1];
        HelloMagic.CopyTo(hello);
        SHA256.HashData(Encoding.UTF8.GetBytes(Key)).CopyTo(hello, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(40), (ushort)idBytes.Length);
        idBytes.CopyTo(hello, 42);
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(42 + idBytes.Length), (ushort)nameBytes.Length);
        nameBytes.CopyTo(hello, 44 + idBytes.Length);
        hello[^1] = stopped ? (byte)1 : (byte)0;
        return hello;
    }

    private async Task AcceptMigrationsAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _migrationListener!.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            client.NoDelay = true;
            _ = Task.Run(() => ReceiveMigrationAsync(client));
        }
    }

    /// <summary>Target side: authenticates the peer, then receives, restores and (on activation) schedules the process.</summary>
    private async Task ReceiveMigrationAsync(TcpClient client)
    {
        using var connection = client;
        var stream = client.GetStream();
        string id, source;
        bool stopped;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var head = new byte[42];
            await stream.ReadExactlyAsync(head, timeout.Token);
            // An unauthenticated peer gets a closed connection and nothing else (invariant 4).
            if (!head.AsSpan(0, 8).SequenceEqual(HelloMagic) || !CryptographicOperations.FixedTimeEquals(head.AsSpan(8, 32), SHA256.HashData(Encoding.UTF8.GetBytes(Key)))) return;
            id = Encoding.UTF8.GetString(await ReadString(stream, BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(40)), timeout.Token));
            var length = new byte[2];
            await stream.ReadExactlyAsync(length, timeout.Token);
            source = Encoding.UTF8.GetString(await ReadString(stream, BinaryPrimitives.ReadUInt16LittleEndian(length), timeout.Token));
            var flag = new byte[1];
            await stream.ReadExactlyAsync(flag, timeout.Token);
            stopped = flag[0] == 1;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or EndOfStreamException or SocketException or ArgumentException)
        {
            return;
        }

        var output = new OutputLog(_options.OutputRetentionBytes);
        var result = await MigrationTarget.ReceiveAsync(stream,
            offer => Admit(offer, id, source),
            (image, received) => ProcessSnapshot.Restore(image, Stream.Null, output.Writer(1), output.Writer(2), hash => Code.Get(hash)?.Bytes.ToArray(), suspendInsteadOfBlocking: true, received, RefusedResources),
            migration => AskSource(source, migration),
            options: new MigrationOptions { PeerSilence = _options.PeerSilence },
            stageEntered: CrashIfInjected,
            cancel: _stopping.Token);
        if (result.Process is not { } restored) return;
        var stdio = restored.Wasi.Resources.Entries().Select(e => e.Resource).OfType<StdioResource>().ToList();
        output.StartAt(stdio.Where(s => s.Kind == ResourceKind.Stdout).Sum(s => s.Sequence), stdio.Where(s => s.Kind == ResourceKind.Stderr).Sum(s => s.Sequence));
        // The source sends the output written there once it has let go; if it never does, readers are not held forever.
        _ = Task.Delay(EarlierOutputWait, _stopping.Token).ContinueWith(_ => output.StopAwaitingEarlier(), TaskScheduler.Default);
        var process = new HostedProcess(id, restored.Module, restored.Instance, restored.Wasi.Configuration.Arguments.Skip(1).ToList(), restored.Execution, restored.Wasi, output)
        {
            Pager = result.Pager,
            StopRequested = stopped,
        };
        _moved.TryRemove(id, out var _);
        _processes[id] = process;
        if (result.Outcome == TargetOutcome.InDoubt)
        {
            process.State = ProcessState.InDoubt;
            process.Error = result.Reason;
            return;
        }
        _scheduler.Enqueue(process);
        if (HomeOf(id) is { } home && home != Name) _ = TellHome(home, id, Name);
        if (result.Pager is { } pager)
        {
            // Post-copy: the connection carries the rest of memory; it stays open until the last frame is in.
            try
            {
                await pager.Completion;
            }
            catch (PostCopySourceLostException)
            {
                // The process learns it at its next fault and ends as Lost, with the reason in its output. The output it
                // wrote before the move went with the source (sent once the push ends): readers stop waiting for it.
                output.StopAwaitingEarlier();
            }
        }
    }

    private void CrashIfInjected(MigrationStage stage)
    {
        if (stage != _options.CrashAsTargetAt) return;
        Console.Error.WriteLine($"ferry node {Name}: fault injection: killing this node as a migration enters stage {stage}");
        // SIGKILL to itself, delivered before the call returns: as abrupt as `kill -9`.
        System.Diagnostics.Process.GetCurrentProcess().Kill();
    }

    private static async Task<byte[]> ReadString(NetworkStream stream, int length, CancellationToken cancel)
    {
        var bytes = new byte[length];
        await stream.ReadExactlyAsync(bytes, cancel);
        return bytes;
    }

    /// <summary>Stage 2 on the target: a migration id once only, resources this node grants, the code present or pulled (and checked against its hash).</summary>
    private async Task<Admission> Admit(MigrationOffer offer, string id, string source)
    {
        if (!_admitted.TryAdd(offer.Id, 0)) return Admission.Refuse($"replayed migration id {offer.Id}");
        if (_processes.TryGetValue(id, out var existing) && !existing.Ended) return Admission.Refuse($"process {id} already runs here");
        if (RefusedResources(offer.Directories, offer.Listeners) is { } denied) return Admission.Refuse($"this host will not grant the process's resources: {denied}");
        var module = Code.Get(offer.ModuleHash);
        if (module is null)
        {
            var (pulled, refusal) = await PullModule(offer.ModuleHash, Cluster.Find(source)?.Address);
            if (refusal is not null) return Admission.Refuse(refusal);
            module = pulled;
        }
        return module is null ? Admission.Refuse($"module {offer.ModuleHash} is on no reachable member") : Admission.Admit(module);
    }

    /// <summary>In doubt: asks the source node what it decided, for a while, since it may still be deciding.</summary>
    private async Task<bool?> AskSource(string source, Guid migration)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (Cluster.Find(source) is not { } member || member.State == MemberState.Down) return null;
            try
            {
                var answer = await _peers.GetFromJsonAsync<JsonElement>(new Uri(new Uri(member.Address), $"/v1/migrations/{migration}"));
                var decision = answer.GetProperty("decision").GetString();
                if (decision == "committed") return true;
                if (decision == "aborted") return false;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
            {
                // Not answering (yet): ask again.
            }
            await Task.Delay(250);
        }
        return null;
    }
}
