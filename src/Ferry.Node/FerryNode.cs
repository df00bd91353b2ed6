using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Net.Http.Json;
using Ferry.Engine;
using Ferry.Node.Cluster;
using Ferry.Node.Code;
using Ferry.Node.Processes;
using Ferry.Wasi;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferry.Node;

/// <summary>How a node is started.</summary>
public sealed record NodeOptions
{
    public required string Name { get; init; }
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 7070);
    public required string DataDirectory { get; init; }
    public int Workers { get; init; } = Environment.ProcessorCount;
    /// <summary>Instructions a process runs before the next one in the run queue gets a worker.</summary>
    public long SliceFuel { get; init; } = 2_000_000;
    /// <summary>Output kept per process (oldest bytes are dropped beyond it; sequence numbers continue).</summary>
    public long OutputRetentionBytes { get; init; } = 1 << 20;
    /// <summary>Host directories, besides the data directory's files/, that submitted processes may preopen.</summary>
    public IReadOnlyList<string> AllowedDirectories { get; init; } = [];
    /// <summary>The largest module an upload or a pull may bring (a WASI build of LLVM is 72 MiB).</summary>
    public long MaxModuleBytes { get; init; } = 256L << 20;
    /// <summary>Any member of the cluster to join through (HOST:PORT); none starts a new cluster.</summary>
    public string? Join { get; init; }
    /// <summary>The cluster key, required when joining; a new cluster creates one in the data directory.</summary>
    public string? Key { get; init; }
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(500);
    public TimeSpan SuspectAfter { get; init; } = TimeSpan.FromSeconds(1.5);
    public TimeSpan DownAfter { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>TCP port for migration connections, on the API's address; 0 picks a free one (published in GET /v1/node).</summary>
    public int MigrationPort { get; init; }
    /// <summary>
    /// How long a migration's peer may send nothing (mid-frame, or while a frame is awaited) before this node takes it for
    /// dead and gives up, on either side of a migration; the slowest --bandwidth allowed is scaled to it.
    /// </summary>
    public TimeSpan PeerSilence { get; init; } = new Ferry.Mobility.Migration.MigrationOptions().PeerSilence;
    /// <summary>How long a stopping node waits for the post-copy pushes it sources (its processes' only memory) before it abandons them.</summary>
    public TimeSpan MigrationDrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// Fault injection, for tests of invariant 1 against a real crash: the node kills itself (SIGKILL: no cleanup, no
    /// goodbye on any connection) when a migration it receives enters this stage. Set by FERRY_CRASH_AS_TARGET_AT.
    /// </summary>
    public Ferry.Mobility.Migration.MigrationStage? CrashAsTargetAt { get; init; }
}

/// <summary>
/// The request body of POST /v1/processes. <paramref name="On"/> names the node to run on (default: the one asked);
/// <paramref name="Source"/> is the address of a node that has the module, for the target to pull it from.
/// <paramref name="StopAfter"/> stops the process after that many instructions (then `continue` it), to run it to a chosen point.
/// </summary>
/// <summary>
/// A process to start: the module by hash, and <paramref name="Argv0"/>, the program name its argv[0] carries (the file name
/// it was submitted under, which multi-call programs such as LLVM's dispatch on; the hash when absent).
/// </summary>
public sealed record SubmitRequest(string Module, List<string>? Args, Dictionary<string, string>? Env, List<string>? Dirs, string? On = null, string? Source = null, long? StopAfter = null, string? Argv0 = null);

/// <summary>
/// A Ferry node: hosts processes on a worker pool, stores modules by hash, and serves a JSON control plane on
/// Kestrel (problem+json errors). Every request must carry the cluster key.
/// </summary>
public sealed partial class FerryNode : IAsyncDisposable
{
    public const string KeyFileName = "cluster.key";

    private readonly NodeOptions _options;
    private readonly WebApplication _app;
    private readonly Scheduler _scheduler;
    private readonly ConcurrentDictionary<string, HostedProcess> _processes = new();
    private readonly string _filesDirectory;
    private long _nextId;

    private FerryNode(NodeOptions options)
    {
        _options = options;
        Directory.CreateDirectory(options.DataDirectory);
        _filesDirectory = Path.Combine(Path.GetFullPath(options.DataDirectory), "files");
        Directory.CreateDirectory(_filesDirectory);
        Code = new CodeStore(Path.Combine(options.DataDirectory, "modules"));
        Key = options.Join is null ? LoadOrCreateKey(options.DataDirectory) : options.Key ?? throw new ArgumentException("joining a cluster needs its key");
        // A peer's answer is at most a module (code on demand), never more than this node would take in an upload.
        _peers = new HttpClient { Timeout = TimeSpan.FromSeconds(30), MaxResponseContentBufferSize = options.MaxModuleBytes };
        _peers.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
        _scheduler = new Scheduler(options.Workers, options.SliceFuel);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(options.Listen);
            kestrel.Limits.MaxRequestBodySize = options.MaxModuleBytes;
        });
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));
        _app = builder.Build();
        _app.UseExceptionHandler();
        _app.UseStatusCodePages();
        _app.Use(async (context, next) =>
        {
            // Count what crosses the network in both directions (bodies; headers are a few hundred bytes).
            Interlocked.Add(ref _bytesIn, context.Request.ContentLength ?? 0);
            var counting = new CountingStream(context.Response.Body);
            context.Response.Body = counting;
            try
            {
                await next(context);
            }
            finally
            {
                Interlocked.Add(ref _bytesOut, counting.Written);
            }
        });
        _app.Use(async (context, next) =>
        {
            var header = context.Request.Headers.Authorization.ToString();
            if (header != $"Bearer {Key}")
            {
                await Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "the cluster key is missing or wrong").ExecuteAsync(context);
                return;
            }
            await next(context);
        });
        MapApi(_app);
    }

    public string Name => _options.Name;
    /// <summary>The key every client and peer must present.</summary>
    public string Key { get; }
    public CodeStore Code { get; }
    /// <summary>The address the node listens on (the actual port when 0 was asked for).</summary>
    public Uri Address { get; private set; } = new("http://127.0.0.1/");

    /// <summary>The cluster as this node sees it.</summary>
    public Membership Cluster { get; private set; } = null!;
    /// <summary>Module bytes this node has pulled from other nodes (code on demand).</summary>
    public long ModuleBytesPulled => Interlocked.Read(ref _moduleBytesPulled);

    private readonly HttpClient _peers;
    private long _moduleBytesPulled;
    private long _bytesIn;
    private long _bytesOut;

    /// <summary>Request body bytes this node has received over its API.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);
    /// <summary>Response body bytes this node has sent over its API.</summary>
    public long BytesOut => Interlocked.Read(ref _bytesOut);
    private TimeSpan _lastCpu = Environment.CpuUsage.TotalTime;
    private DateTime _lastSample = DateTime.UtcNow;
    private double _cpu;

    public static async Task<FerryNode> StartAsync(NodeOptions options)
    {
        var node = new FerryNode(options);
        await node._app.StartAsync();
        var server = node._app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>();
        var addresses = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses;
        node.Address = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        node.Cluster = new Membership(options.Name, node.Address.ToString(), node.Key, node.Load, options.HeartbeatInterval, options.SuspectAfter, options.DownAfter);
        if (options.Join is { } seed) await node.Cluster.JoinAsync(seed.Contains("://", StringComparison.Ordinal) ? seed : $"http://{seed}");
        node.Cluster.Start();
        node.StartMigrationListener();
        node.ResumeSaved();
        return node;
    }

    private string SavedDirectory => Path.Combine(_options.DataDirectory, "processes");

    /// <summary>Resumes the processes saved by the last graceful shutdown; a snapshot that cannot be restored is kept aside with a .failed suffix.</summary>
    private void ResumeSaved()
    {
        if (!Directory.Exists(SavedDirectory)) return;
        foreach (var file in Directory.GetFiles(SavedDirectory, "*.snap"))
        {
            var id = Path.GetFileNameWithoutExtension(file);
            var output = new OutputLog(_options.OutputRetentionBytes);
            var log = Path.ChangeExtension(file, ".log");
            try
            {
                if (File.Exists(log))
                {
                    using var saved = File.OpenRead(log);
                    output.LoadFrom(saved);
                }
                Ferry.Mobility.RestoredProcess restored;
                using (var stream = File.OpenRead(file))
                {
                    restored = Ferry.Mobility.ProcessSnapshot.Restore(stream, Stream.Null, output.Writer(1), output.Writer(2), hash => Code.Get(hash)?.Bytes.ToArray(), suspendInsteadOfBlocking: true, refuseResources: RefusedResources);
                }
                var process = new HostedProcess(id, restored.Module, restored.Instance, restored.Wasi.Configuration.Arguments.Skip(1).ToList(), restored.Execution, restored.Wasi, output);
                _processes[id] = process;
                if (id.StartsWith(Name + "-", StringComparison.Ordinal) && long.TryParse(id[(Name.Length + 1)..], out var number))
                    _nextId = Math.Max(_nextId, number);
                _scheduler.Enqueue(process);
                File.Delete(file);
                File.Delete(log);
            }
            catch (Exception e) when (e is Ferry.Mobility.Snapshots.SnapshotFormatException or Ferry.Mobility.RestoreException or IOException)
            {
                File.Move(file, file + ".failed", overwrite: true);
            }
        }
    }

    /// <summary>
    /// Graceful shutdown: every running process is stopped at a safepoint and saved to DATA/processes as a snapshot,
    /// to resume at the next start; one that cannot be saved (it holds a connected socket) is killed.
    /// </summary>
    private async Task SaveRunningAsync()
    {
        var running = _processes.Values.Where(p => !p.Ended).ToList();
        foreach (var process in running) process.Save();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (running.Any(p => !p.Ended) && DateTime.UtcNow < deadline) await Task.Delay(20);
        Directory.CreateDirectory(SavedDirectory);
        foreach (var process in running.Where(p => p.State == ProcessState.Saved))
        {
            var file = Path.Combine(SavedDirectory, process.Id + ".snap");
            try
            {
                using (var stream = File.Create(file + ".partial"))
                {
                    Ferry.Mobility.ProcessSnapshot.Capture(stream, process.Module, process.Instance, process.Execution, process.Wasi);
                }
                using (var log = File.Create(Path.ChangeExtension(file, ".log")))
                {
                    process.Output.SaveTo(log);
                }
                File.Move(file + ".partial", file, overwrite: true);
            }
            catch (Ferry.Mobility.CaptureRefusedException e)
            {
                File.Delete(file + ".partial");
                Console.Error.WriteLine($"ferry node {Name}: process {process.Id} cannot be saved and ends here: {e.Message}");
            }
            process.Wasi.Dispose();
            process.Output.Close();
        }
    }

    /// <summary>This node's load: run queue, running processes, CPU utilisation since the last sample, memory.</summary>
    private NodeLoad Load()
    {
        lock (_peers)
        {
            var now = DateTime.UtcNow;
            var cpu = Environment.CpuUsage.TotalTime;
            var wall = now - _lastSample;
            if (wall > TimeSpan.FromMilliseconds(200))
            {
                _cpu = Math.Clamp((cpu - _lastCpu) / wall / Environment.ProcessorCount, 0, 1);
                _lastCpu = cpu;
                _lastSample = now;
            }
        }
        return new NodeLoad(_scheduler.RunQueueLength, _processes.Values.Count(p => !p.Ended), _cpu,
            Environment.WorkingSet, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
    }

    /// <summary>The cluster key: created (random, 256 bits) in the data directory by the first node, read afterwards.</summary>
    private static string LoadOrCreateKey(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, KeyFileName);
        if (File.Exists(path)) return File.ReadAllText(path).Trim();
        var key = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        File.WriteAllText(path, key + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return key;
    }

    private void MapApi(WebApplication app)
    {
        app.MapPost("/v1/cluster/heartbeats", (Heartbeat heartbeat) => Results.Ok(Cluster.Receive(heartbeat)));
        app.MapGet("/v1/cluster", () => Results.Ok(Cluster.Members));
        app.MapPut("/v1/modules", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            try
            {
                await request.Body.CopyToAsync(body);
            }
            catch (BadHttpRequestException e)
            {
                return Results.Problem(statusCode: e.StatusCode, title: $"the upload is refused: {e.Message} (this node accepts modules of up to {_options.MaxModuleBytes:N0} bytes)");
            }
            try
            {
                return Results.Ok(new { hash = Code.Put(body.ToArray()) });
            }
            catch (WasmException e)
            {
                return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "the module is not valid WebAssembly", detail: e.Message);
            }
        });
        app.MapGet("/v1/modules/{hash}", (string hash) =>
            Code.Get(hash) is { } module ? Results.Bytes(module.Bytes.ToArray(), "application/wasm") : Results.Problem(statusCode: 404, title: $"no module {hash} on this node"));
        app.MapPost("/v1/processes", (SubmitRequest request) => Submit(request));
        app.MapGet("/v1/processes", (string? scope) => scope == "local"
            ? Task.FromResult(Results.Ok(_processes.Values.OrderBy(p => p.Created).Select(Describe)))
            : ClusterProcesses());
        app.MapGet("/v1/processes/{id}", (string id, HttpContext context) =>
            Elsewhere(id) is { } owner ? Proxy(context, owner) : Task.FromResult(_processes.TryGetValue(id, out var process) ? Results.Ok(Describe(process)) : UnknownProcess(id)));
        app.MapGet("/v1/processes/{id}/output", (string id, long? stdout, long? stderr, int? waitMs, HttpContext context) =>
        {
            if (!_processes.TryGetValue(id, out var process))
            {
                // The log it left here holds everything up to its move: a reader behind that is served here, without waiting.
                if (_moved.TryGetValue(id, out var moved) && moved.Output.Read(stdout ?? 0, stderr ?? 0, TimeSpan.Zero).Chunks is { Count: > 0 } earlier)
                    return Task.FromResult(OutputPage(earlier, false, null));
                return Elsewhere(id) is { } owner ? Proxy(context, owner) : Task.FromResult(UnknownProcess(id));
            }
            var (chunks, closed) = process.Output.Read(stdout ?? 0, stderr ?? 0, TimeSpan.FromMilliseconds(Math.Clamp(waitMs ?? 0, 0, 30_000)));
            // A log closed by a move is not the end: the reader goes on at the node it moved to.
            return Task.FromResult(OutputPage(chunks, closed && process.State != ProcessState.Moved, process));
        });
        app.MapDelete("/v1/processes/{id}", (string id, HttpContext context) =>
        {
            if (Elsewhere(id) is { } owner) return Proxy(context, owner);
            if (!_processes.TryGetValue(id, out var process)) return Task.FromResult(UnknownProcess(id));
            process.Kill();
            return Task.FromResult(Results.Accepted($"/v1/processes/{id}", Describe(process)));
        });
        MapMigrationApi(app);
        app.MapGet("/v1/node", () => Results.Ok(new
        {
            name = Name,
            load = Load(),
            processes = _processes.Count,
            migrationPort = MigrationPort,
            moduleBytesPulled = ModuleBytesPulled,
            bytesIn = BytesIn,
            bytesOut = BytesOut,
        }));
    }

    private static IResult OutputPage(List<OutputChunk> chunks, bool closed, HostedProcess? process) => Results.Ok(new
    {
        chunks = chunks.Select(c => new { stream = c.Stream, sequence = c.Sequence, data = Convert.ToBase64String(c.Data) }),
        closed,
        state = process?.State.ToString() ?? nameof(ProcessState.Moved),
        exitCode = process?.ExitCode,
    });

    private static IResult UnknownProcess(string id) => Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"no process {id}");

    /// <summary>
    /// The member to ask about a process that does not run here, or null when it does (or is unknown): the node it
    /// moved to, if it moved from here; else its home node (ids are HOME-N), which keeps a pointer to where it runs.
    /// </summary>
    private Member? Elsewhere(string id)
    {
        if (_processes.ContainsKey(id)) return null;
        if (_moved.TryGetValue(id, out var moved)) return Cluster.Find(moved.Node);
        var dash = id.LastIndexOf('-');
        var owner = dash > 0 ? id[..dash] : Name;
        return owner == Name ? null : Cluster.Find(owner);
    }

    /// <summary>Forwards the request to the member that owns it and relays its answer.</summary>
    private async Task<IResult> Proxy(HttpContext context, Member owner)
    {
        if (owner.State == MemberState.Down) return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: $"node {owner.Name} is down");
        var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), new Uri(new Uri(owner.Address), context.Request.Path + context.Request.QueryString));
        try
        {
            using var response = await _peers.SendAsync(request, context.RequestAborted);
            var body = await response.Content.ReadAsStringAsync(context.RequestAborted);
            return Results.Text(body, response.Content.Headers.ContentType?.ToString() ?? "application/json", statusCode: (int)response.StatusCode);
        }
        catch (HttpRequestException e)
        {
            return Results.Problem(statusCode: StatusCodes.Status502BadGateway, title: $"node {owner.Name} did not answer", detail: e.Message);
        }
    }

    /// <summary>Every process of every reachable member.</summary>
    private async Task<IResult> ClusterProcesses()
    {
        var all = new List<System.Text.Json.JsonElement>(_processes.Values.OrderBy(p => p.Created).Select(p => System.Text.Json.JsonSerializer.SerializeToElement(Describe(p))));
        foreach (var member in Cluster.Members.Where(m => m.Name != Name && m.State != MemberState.Down))
        {
            try
            {
                var remote = await _peers.GetFromJsonAsync<List<System.Text.Json.JsonElement>>(new Uri(new Uri(member.Address), "/v1/processes?scope=local"));
                all.AddRange(remote ?? []);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
            {
                // A member that does not answer contributes nothing; its state shows in the cluster view.
            }
        }
        return Results.Ok(all);
    }

    /// <summary>
    /// Code on demand: fetches a module this node lacks from <paramref name="source"/> or any member, and keeps it only
    /// if its bytes hash to what was asked for.
    /// </summary>
    private async Task<(Module? Module, string? Refusal)> PullModule(string hash, string? source)
    {
        var candidates = new List<string>();
        if (source is not null) candidates.Add(source);
        candidates.AddRange(Cluster.Members.Where(m => m.Name != Name && m.State == MemberState.Alive).Select(m => m.Address));
        foreach (var address in candidates.Distinct())
        {
            byte[] bytes;
            try
            {
                using var response = await _peers.GetAsync(new Uri(new Uri(address), $"/v1/modules/{hash}"));
                if (!response.IsSuccessStatusCode) continue;
                bytes = await response.Content.ReadAsByteArrayAsync();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                continue;
            }
            Interlocked.Add(ref _moduleBytesPulled, bytes.Length);
            try
            {
                return Code.PutExpected(bytes, hash) is { } module ? (module, null) : (null, $"{address} sent a module whose SHA-256 is not {hash}: refused");
            }
            catch (WasmException e)
            {
                return (null, $"the module from {address} is not valid: {e.Message}");
            }
        }
        return (null, null);
    }

    private object Describe(HostedProcess p) => new
    {
        id = p.Id,
        node = Name,
        module = p.ModuleHash,
        args = p.Arguments,
        state = p.State.ToString(),
        exitCode = p.ExitCode,
        error = p.Error,
        movedTo = p.MovedTo,
        instructions = p.InstructionsExecuted,
        slices = p.Slices,
        created = p.Created,
    };

    /// <summary>Resolves a submitted HOST[::GUEST] to a preopen, refusing any host directory outside the allowed ones.</summary>
    private Preopen? AllowedPreopen(string specification)
    {
        var separator = specification.IndexOf("::", StringComparison.Ordinal);
        var host = separator < 0 ? specification : specification[..separator];
        var guest = separator < 0 ? host : specification[(separator + 2)..];
        var full = Path.GetFullPath(Path.IsPathRooted(host) ? host : Path.Combine(_filesDirectory, host));
        return IsAllowedDirectory(full) && Directory.Exists(full) && guest.Length > 0 ? new Preopen(full, guest) : null;
    }

    /// <summary>Whether processes here may preopen <paramref name="full"/>: its data directory's files/ and its allow-list.</summary>
    private bool IsAllowedDirectory(string full)
    {
        static bool Under(string path, string root) =>
            path == root || path.StartsWith(root.EndsWith('/') ? root : root + "/", StringComparison.Ordinal);
        return Under(full, _filesDirectory) || _options.AllowedDirectories.Any(d => Under(full, Path.GetFullPath(d)));
    }

    /// <summary>
    /// The sandbox policy for a process restored here (moved in, or saved before a restart): what it would have been
    /// refused at submission is refused now, so a peer cannot widen it. Null when every resource is granted.
    /// </summary>
    private string? RefusedResources(Ferry.Mobility.Snapshots.ResourceSegment resources) =>
        RefusedResources(resources.Preopens.Select(p => p.HostPath), resources.Listeners.Count);

    private string? RefusedResources(IEnumerable<string> directories, int listeners)
    {
        foreach (var directory in directories)
        {
            if (!Path.IsPathRooted(directory) || !IsAllowedDirectory(Path.GetFullPath(directory)))
                return $"the directory {directory} is outside node {Name}'s allowed directories (its data directory's files/ and its allow-list)";
        }
        return listeners > 0 ? $"node {Name} grants processes no listening sockets, and this one holds {listeners}" : null;
    }

    private async Task<IResult> Submit(SubmitRequest request)
    {
        if (request.On is { } target && target != Name) return await Forward(request, target);
        var module = Code.Get(request.Module ?? "");
        if (module is null && request.Module is { Length: 64 } hash)
        {
            var (pulled, refusal) = await PullModule(hash, request.Source);
            if (refusal is not null) return Results.Problem(statusCode: StatusCodes.Status502BadGateway, title: refusal);
            module = pulled;
        }
        if (module is null) return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"module {request.Module} is not on this node or any member: upload it first (PUT /v1/modules)");
        var preopens = new List<Preopen>();
        foreach (var dir in request.Dirs ?? [])
        {
            if (AllowedPreopen(dir) is not { } preopen)
                return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: $"--dir {dir} is outside this node's allowed directories (its data directory's files/ and its allow-list) or does not exist");
            preopens.Add(preopen);
        }
        var id = $"{Name}-{Interlocked.Increment(ref _nextId)}";
        var output = new OutputLog(_options.OutputRetentionBytes);
        var arguments = new List<string> { request.Argv0 ?? request.Module! };
        arguments.AddRange(request.Args ?? []);
        var wasi = new WasiProcess(new WasiConfiguration
        {
            Arguments = arguments,
            Environment = [.. (request.Env ?? []).Select(kv => new KeyValuePair<string, string>(kv.Key, kv.Value))],
            Preopens = preopens,
            Stdout = output.Writer(1),
            Stderr = output.Writer(2),
            SuspendInsteadOfBlocking = true,
        });
        try
        {
            var store = new Store();
            var linker = new Linker();
            wasi.Define(linker);
            var instance = linker.Instantiate(store, module);
            if (!instance.TryGetExport("_start", out var start) || start.AsFunction is not { } entry)
                throw new LinkException("the module exports no _start function", "_start");
            var process = new HostedProcess(id, module, instance, request.Args ?? [], store.Start(entry), wasi, output) { Budget = request.StopAfter };
            _processes[id] = process;
            _scheduler.Enqueue(process);
            return Results.Created($"/v1/processes/{id}", new { id });
        }
        catch (Exception e) when (e is LinkException or TrapException)
        {
            wasi.Dispose();
            return Results.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, title: "the process cannot start", detail: e.Message);
        }
    }

    /// <summary>Sends a submission on to the node it names, telling it where the module can be pulled from.</summary>
    private async Task<IResult> Forward(SubmitRequest request, string target)
    {
        if (Cluster.Find(target) is not { } member) return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"no node named {target} in the cluster");
        if (member.State == MemberState.Down) return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: $"node {target} is down");
        var forwarded = request with { On = null, Source = Code.Contains(request.Module ?? "") ? Address.ToString() : request.Source };
        try
        {
            using var response = await _peers.PostAsJsonAsync(new Uri(new Uri(member.Address), "/v1/processes"), forwarded);
            var body = await response.Content.ReadAsStringAsync();
            return Results.Text(body, response.Content.Headers.ContentType?.ToString() ?? "application/json", statusCode: (int)response.StatusCode);
        }
        catch (HttpRequestException e)
        {
            return Results.Problem(statusCode: StatusCodes.Status502BadGateway, title: $"node {target} did not answer", detail: e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        StopMigrationListener();
        // Side by side, not one after the other: each may take the whole MigrationDrainTimeout, and the command line
        // gives the stop that, the saving and a margin (NodeCommands.StopLimit) before the process exits.
        await Task.WhenAll(DrainOutgoingMigrationsAsync(), DrainIncomingPushesAsync());
        await _warmUp;
        await SaveRunningAsync();
        await Cluster.DisposeAsync();
        _peers.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _scheduler.Dispose();
    }
}
