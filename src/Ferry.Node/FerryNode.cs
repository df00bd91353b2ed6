using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Ferry.Engine;
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
    public long MaxModuleBytes { get; init; } = 64L << 20;
}

/// <summary>The request body of POST /v1/processes.</summary>
public sealed record SubmitRequest(string Module, List<string>? Args, Dictionary<string, string>? Env, List<string>? Dirs);

/// <summary>
/// A Ferry node: hosts processes on a worker pool, stores modules by hash, and serves a JSON control plane on
/// Kestrel (problem+json errors). Every request must carry the cluster key.
/// </summary>
public sealed class FerryNode : IAsyncDisposable
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
        Key = LoadOrCreateKey(options.DataDirectory);
        _scheduler = new Scheduler(options.Workers, options.SliceFuel);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(options.Listen);
            kestrel.Limits.MaxRequestBodySize = options.MaxModuleBytes;
        });
        builder.Services.AddProblemDetails();
        _app = builder.Build();
        _app.UseExceptionHandler();
        _app.UseStatusCodePages();
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

    public static async Task<FerryNode> StartAsync(NodeOptions options)
    {
        var node = new FerryNode(options);
        await node._app.StartAsync();
        var server = node._app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>();
        var addresses = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses;
        node.Address = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        return node;
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
        app.MapPut("/v1/modules", async (HttpRequest request) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
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
        app.MapGet("/v1/processes", () => Results.Ok(_processes.Values.OrderBy(p => p.Created).Select(Describe)));
        app.MapGet("/v1/processes/{id}", (string id) =>
            _processes.TryGetValue(id, out var process) ? Results.Ok(Describe(process)) : UnknownProcess(id));
        app.MapGet("/v1/processes/{id}/output", (string id, long? stdout, long? stderr, int? waitMs) =>
        {
            if (!_processes.TryGetValue(id, out var process)) return UnknownProcess(id);
            var (chunks, closed) = process.Output.Read(stdout ?? 0, stderr ?? 0, TimeSpan.FromMilliseconds(Math.Clamp(waitMs ?? 0, 0, 30_000)));
            return Results.Ok(new
            {
                chunks = chunks.Select(c => new { stream = c.Stream, sequence = c.Sequence, data = Convert.ToBase64String(c.Data) }),
                closed,
                state = process.State.ToString(),
                exitCode = process.ExitCode,
            });
        });
        app.MapDelete("/v1/processes/{id}", (string id) =>
        {
            if (!_processes.TryGetValue(id, out var process)) return UnknownProcess(id);
            process.Kill();
            return Results.Accepted($"/v1/processes/{id}", Describe(process));
        });
        app.MapGet("/v1/node", () => Results.Ok(new
        {
            name = Name,
            runQueue = _scheduler.RunQueueLength,
            processes = _processes.Count,
            running = _processes.Values.Count(p => !p.Ended),
            memoryBytes = GC.GetTotalMemory(false),
        }));
    }

    private static IResult UnknownProcess(string id) => Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"no process {id}");

    private static object Describe(HostedProcess p) => new
    {
        id = p.Id,
        module = p.ModuleHash,
        args = p.Arguments,
        state = p.State.ToString(),
        exitCode = p.ExitCode,
        error = p.Error,
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
        static bool Under(string path, string root) =>
            path == root || path.StartsWith(root.EndsWith('/') ? root : root + "/", StringComparison.Ordinal);
        var allowed = Under(full, _filesDirectory) || _options.AllowedDirectories.Any(d => Under(full, Path.GetFullPath(d)));
        return allowed && Directory.Exists(full) && guest.Length > 0 ? new Preopen(full, guest) : null;
    }

    private IResult Submit(SubmitRequest request)
    {
        var module = Code.Get(request.Module ?? "");
        if (module is null) return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: $"module {request.Module} is not on this node: upload it first (PUT /v1/modules)");
        var preopens = new List<Preopen>();
        foreach (var dir in request.Dirs ?? [])
        {
            if (AllowedPreopen(dir) is not { } preopen)
                return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: $"--dir {dir} is outside this node's allowed directories (its data directory's files/ and its allow-list) or does not exist");
            preopens.Add(preopen);
        }
        var id = $"{Name}-{Interlocked.Increment(ref _nextId)}";
        var output = new OutputLog(_options.OutputRetentionBytes);
        var arguments = new List<string> { request.Module! };
        arguments.AddRange(request.Args ?? []);
        var wasi = new WasiProcess(new WasiConfiguration
        {
            Arguments = arguments,
            Environment = [.. (request.Env ?? []).Select(kv => new KeyValuePair<string, string>(kv.Key, kv.Value))],
            Preopens = preopens,
            Stdout = output.Writer(1),
            Stderr = output.Writer(2),
        });
        try
        {
            var store = new Store();
            var linker = new Linker();
            wasi.Define(linker);
            var instance = linker.Instantiate(store, module);
            if (!instance.TryGetExport("_start", out var start) || start.AsFunction is not { } entry)
                throw new LinkException("the module exports no _start function", "_start");
            var process = new HostedProcess(id, module.Hash, request.Args ?? [], store.Start(entry), wasi, output);
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

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes.Values) process.Kill();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _scheduler.Dispose();
    }
}
