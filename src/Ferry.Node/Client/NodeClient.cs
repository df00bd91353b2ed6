using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Ferry.Node.Client;

/// <summary>A refusal or failure reported by a node (its problem+json title and detail), or an unreachable node.</summary>
public sealed class NodeRequestException(string message, int? status = null) : Exception(message)
{
    public int? Status { get; } = status;
}

/// <summary>One piece of output, as the node returns it.</summary>
public sealed record OutputPiece(int Stream, long Sequence, byte[] Data);

/// <summary>The node's control-plane API as a C# client: what `ferry submit`, `ps`, `logs` and `kill` use.</summary>
public sealed class NodeClient : IDisposable
{
    private readonly HttpClient _http;

    public NodeClient(string node, string key)
    {
        _http = new HttpClient { BaseAddress = new Uri(node.Contains("://", StringComparison.Ordinal) ? node : $"http://{node}"), Timeout = TimeSpan.FromSeconds(100) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    /// <summary>The key from a file, else $FERRY_KEY: the key itself, or the path of its file (a key is hex, never a path).</summary>
    public static string? ResolveKey(string? keyFile)
    {
        if (keyFile is not null) return File.ReadAllText(keyFile).Trim();
        var key = Environment.GetEnvironmentVariable("FERRY_KEY");
        return key is not null && key.Contains(Path.DirectorySeparatorChar) && File.Exists(key) ? File.ReadAllText(key).Trim() : key;
    }

    private async Task<JsonElement> Send(HttpRequestMessage request)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request);
        }
        catch (HttpRequestException e)
        {
            throw new NodeRequestException($"cannot reach the node at {_http.BaseAddress}: {e.Message}");
        }
        var text = await response.Content.ReadAsStringAsync();
        JsonElement body = default;
        if (text.Length > 0)
        {
            try
            {
                body = JsonDocument.Parse(text).RootElement.Clone();
            }
            catch (JsonException)
            {
                throw new NodeRequestException($"the node answered {(int)response.StatusCode} with something that is not JSON", (int)response.StatusCode);
            }
        }
        if (!response.IsSuccessStatusCode)
        {
            var title = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("title", out var t) ? t.GetString() : response.ReasonPhrase;
            var detail = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("detail", out var d) ? $": {d.GetString()}" : "";
            throw new NodeRequestException($"{(int)response.StatusCode} {title}{detail}", (int)response.StatusCode);
        }
        return body;
    }

    /// <summary>
    /// Uploads a module; the body follows only once the node agrees (Expect: 100-continue), so a module over its limit is
    /// refused with the node's reason rather than a connection reset midway through the bytes.
    /// </summary>
    public async Task<string> UploadModule(byte[] module)
    {
        var request = new HttpRequestMessage(HttpMethod.Put, "/v1/modules") { Content = new ByteArrayContent(module) };
        request.Headers.ExpectContinue = true;
        return (await Send(request)).GetProperty("hash").GetString()!;
    }

    public async Task<string> Submit(SubmitRequest request) =>
        (await Send(new HttpRequestMessage(HttpMethod.Post, "/v1/processes") { Content = JsonContent.Create(request) })).GetProperty("id").GetString()!;

    /// <summary>The members of the cluster as the node sees them, with state and load.</summary>
    public Task<JsonElement> Cluster() => Send(new HttpRequestMessage(HttpMethod.Get, "/v1/cluster"));

    public Task<JsonElement> Processes() => Send(new HttpRequestMessage(HttpMethod.Get, "/v1/processes"));

    public Task<JsonElement> Process(string id) => Send(new HttpRequestMessage(HttpMethod.Get, $"/v1/processes/{Uri.EscapeDataString(id)}"));

    public Task<JsonElement> Kill(string id) => Send(new HttpRequestMessage(HttpMethod.Delete, $"/v1/processes/{Uri.EscapeDataString(id)}"));

    /// <summary>Output after the given positions, waiting up to <paramref name="waitMs"/> for some; and whether the process has ended.</summary>
    public Task<JsonElement> Stop(string id) => Send(new HttpRequestMessage(HttpMethod.Post, $"/v1/processes/{Uri.EscapeDataString(id)}/stop"));

    public Task<JsonElement> Continue(string id, long? instructions) =>
        Send(new HttpRequestMessage(HttpMethod.Post, $"/v1/processes/{Uri.EscapeDataString(id)}/continue" + (instructions is { } n ? $"?instructions={n}" : "")));

    /// <summary>
    /// Migrates a process; <paramref name="line"/> sees each JSON line the node streams (progress, then the report or the
    /// error). Returns the last line.
    /// </summary>
    public async Task<JsonElement> Migrate(string id, MigrateRequest request, Action<JsonElement>? line = null)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, $"/v1/processes/{Uri.EscapeDataString(id)}/migrate") { Content = JsonContent.Create(request) };
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (HttpRequestException e)
        {
            throw new NodeRequestException($"cannot reach the node at {_http.BaseAddress}: {e.Message}");
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var text = await response.Content.ReadAsStringAsync();
                string? title = null;
                try
                {
                    title = JsonDocument.Parse(text).RootElement.GetProperty("title").GetString();
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    title = response.ReasonPhrase;
                }
                throw new NodeRequestException($"{(int)response.StatusCode} {title}", (int)response.StatusCode);
            }
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            JsonElement last = default;
            while (await reader.ReadLineAsync() is { } text)
            {
                if (text.Length == 0) continue;
                last = JsonDocument.Parse(text).RootElement.Clone();
                line?.Invoke(last);
            }
            if (last.ValueKind != JsonValueKind.Object) throw new NodeRequestException("the node ended the migration's stream without a report");
            return last;
        }
    }

    public async Task<(List<OutputPiece> Pieces, bool Closed, int? ExitCode)> Output(string id, long stdoutFrom, long stderrFrom, int waitMs)
    {
        var page = await Send(new HttpRequestMessage(HttpMethod.Get, $"/v1/processes/{Uri.EscapeDataString(id)}/output?stdout={stdoutFrom}&stderr={stderrFrom}&waitMs={waitMs}"));
        var pieces = page.GetProperty("chunks").EnumerateArray()
            .Select(c => new OutputPiece(c.GetProperty("stream").GetInt32(), c.GetProperty("sequence").GetInt64(), Convert.FromBase64String(c.GetProperty("data").GetString()!)))
            .ToList();
        var exit = page.GetProperty("exitCode");
        return (pieces, page.GetProperty("closed").GetBoolean(), exit.ValueKind == JsonValueKind.Number ? exit.GetInt32() : null);
    }

    /// <summary>
    /// Copies a process's output to the given streams, each byte once and in order; returns when it ends (its exit code) or,
    /// unless following, when nothing more is there. <paramref name="lost"/> is told (stream 1 or 2, bytes) where output the
    /// nodes no longer keep (each keeps the last 1 MiB of a stream) is missing before what follows, so a gap is never silent.
    /// </summary>
    public async Task<int?> CopyOutput(string id, Stream stdout, Stream stderr, bool follow, Action<int, long>? lost = null)
    {
        long outAt = 0, errAt = 0;
        while (true)
        {
            var (pieces, closed, exitCode) = await Output(id, outAt, errAt, follow ? 10_000 : 0);
            foreach (var piece in pieces)
            {
                ref var at = ref piece.Stream == 1 ? ref outAt : ref errAt;
                if (piece.Sequence > at) lost?.Invoke(piece.Stream, piece.Sequence - at);
                var skip = (int)Math.Max(0, at - piece.Sequence);
                if (skip >= piece.Data.Length) continue;
                (piece.Stream == 1 ? stdout : stderr).Write(piece.Data, skip, piece.Data.Length - skip);
                at = piece.Sequence + piece.Data.Length;
            }
            stdout.Flush();
            stderr.Flush();
            if (closed) return exitCode;
            if (!follow && pieces.Count == 0) return null;
        }
    }

    public void Dispose() => _http.Dispose();
}
