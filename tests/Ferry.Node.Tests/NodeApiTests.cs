using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Ferry.Node.Client;
using Ferry.Tests.Shared;
using Xunit.Abstractions;

namespace Ferry.Node.Tests;

/// <summary>A real node on 127.0.0.1, driven over HTTP as a client would.</summary>
public sealed class NodeApiTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("ferry-node-");
    private FerryNode _node = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _node = await FerryNode.StartAsync(new NodeOptions
        {
            Name = "a",
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            DataDirectory = _data.FullName,
            Workers = 2,
            SliceFuel = 200_000,
        });
        _client = new HttpClient { BaseAddress = _node.Address, Timeout = TimeSpan.FromSeconds(60) };
        _client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _node.Key);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _node.DisposeAsync();
        _data.Delete(true);
    }

    private async Task<string> Upload(byte[] module)
    {
        var response = await _client.PutAsync("/v1/modules", new ByteArrayContent(module));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("hash").GetString()!;
    }

    private async Task<string> Submit(string hash, string[]? args = null, string[]? dirs = null)
    {
        var response = await _client.PostAsJsonAsync("/v1/processes", new { module = hash, args, dirs });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>Follows a process's output until it ends; returns stdout, stderr and the exit code.</summary>
    private async Task<(string Stdout, string Stderr, string State, int? ExitCode)> Follow(string id)
    {
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        long outAt = 0, errAt = 0;
        while (true)
        {
            var page = await _client.GetFromJsonAsync<JsonElement>($"/v1/processes/{id}/output?stdout={outAt}&stderr={errAt}&waitMs=5000");
            foreach (var chunk in page.GetProperty("chunks").EnumerateArray())
            {
                var data = Convert.FromBase64String(chunk.GetProperty("data").GetString()!);
                var sequence = chunk.GetProperty("sequence").GetInt64();
                if (chunk.GetProperty("stream").GetInt32() == 1)
                {
                    stdout.Append(Encoding.UTF8.GetString(data, (int)(outAt - sequence), data.Length - (int)(outAt - sequence)));
                    outAt = sequence + data.Length;
                }
                else
                {
                    stderr.Append(Encoding.UTF8.GetString(data, (int)(errAt - sequence), data.Length - (int)(errAt - sequence)));
                    errAt = sequence + data.Length;
                }
            }
            if (page.GetProperty("closed").GetBoolean())
            {
                var exit = page.GetProperty("exitCode");
                return (stdout.ToString(), stderr.ToString(), page.GetProperty("state").GetString()!, exit.ValueKind == JsonValueKind.Null ? null : exit.GetInt32());
            }
        }
    }

    [Fact]
    public async Task A_submitted_guest_runs_and_its_output_and_exit_code_come_back()
    {
        var hash = await Upload(File.ReadAllBytes(Guests.Wasm("args_env")));
        var id = await Submit(hash, ["x", "y"]);
        var (stdout, _, state, exitCode) = await Follow(id);
        Assert.Equal("arg 1: x\narg 2: y\nFERRY_NOT_SET is unset\n", stdout);
        Assert.Equal("Finished", state);
        Assert.Equal(2, exitCode);
        var listed = await _client.GetFromJsonAsync<JsonElement>("/v1/processes");
        Assert.Contains(listed.EnumerateArray(), p => p.GetProperty("id").GetString() == id);
    }

    [Fact]
    public async Task Output_beyond_what_the_node_keeps_is_reported_as_a_gap_by_the_client_not_spliced_silently()
    {
        var id = await Submit(await Upload(File.ReadAllBytes(Guests.Wasm("io"))), ["write", "3"]);
        using var client = new NodeClient(_node.Address.ToString(), _node.Key);
        var stdout = new MemoryStream();
        var gaps = new List<(int Stream, long Bytes)>();
        Assert.Equal(0, await client.CopyOutput(id, stdout, Stream.Null, follow: true, (stream, bytes) => gaps.Add((stream, bytes))));
        // Three MiB written, at most the last one kept: what came back and the gap reported add up to the whole stream.
        Assert.Equal(3L << 20, stdout.Length + gaps.Where(g => g.Stream == 1).Sum(g => g.Bytes));
        Assert.NotEmpty(gaps);
    }

    [Fact]
    public async Task Requests_without_the_key_or_with_a_wrong_key_are_refused()
    {
        using var anonymous = new HttpClient { BaseAddress = _node.Address };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/processes")).StatusCode);
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", new string('0', 64));
        var wrong = await anonymous.PutAsync("/v1/modules", new ByteArrayContent(File.ReadAllBytes(Guests.Wasm("hello"))));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("application/problem+json", wrong.Content.Headers.ContentType?.MediaType);
        Assert.Empty(Directory.GetFiles(Path.Combine(_data.FullName, "modules")));
    }

    [Fact]
    public async Task A_submission_preopening_a_directory_outside_the_allowed_ones_is_refused()
    {
        var hash = await Upload(File.ReadAllBytes(Guests.Wasm("files")));
        foreach (var dir in new[] { "/etc::/data", "../../..::/data", "/tmp::/data" })
        {
            var response = await _client.PostAsJsonAsync("/v1/processes", new { module = hash, args = new[] { "/data" }, dirs = new[] { dir } });
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
        Directory.CreateDirectory(Path.Combine(_data.FullName, "files", "work"));
        var id = await Submit(hash, ["/data"], ["work::/data"]);
        var (stdout, _, _, exitCode) = await Follow(id);
        Assert.Equal(0, exitCode);
        Assert.EndsWith("done\n", stdout);
    }

    [Fact]
    public async Task Bad_input_gets_a_clear_error_and_the_node_keeps_serving()
    {
        var malformed = await _client.PutAsync("/v1/modules", new ByteArrayContent([0, 0x61, 0x73, 0x6D, 9, 0, 0, 0]));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Contains("unknown binary version", await malformed.Content.ReadAsStringAsync());
        var badJson = await _client.PostAsync("/v1/processes", new StringContent("{ not json", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, badJson.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _client.GetAsync("/v1/processes/a-999")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _client.PostAsJsonAsync("/v1/processes", new { module = new string('a', 64) })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _client.GetAsync("/v1/node")).StatusCode);
    }

    [Fact]
    public async Task An_oversized_upload_and_a_client_that_disconnects_mid_upload_leave_the_node_serving()
    {
        using (var socket = new System.Net.Sockets.TcpClient())
        {
            await socket.ConnectAsync(_node.Address.Host, _node.Address.Port);
            var stream = socket.GetStream();
            var head = $"PUT /v1/modules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {_node.Key}\r\nContent-Length: {(256 << 20) + 1}\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            var answer = new byte[64];
            var read = await stream.ReadAsync(answer);
            Assert.StartsWith("HTTP/1.1 413", Encoding.ASCII.GetString(answer, 0, read));
        }

        using (var socket = new System.Net.Sockets.TcpClient())
        {
            await socket.ConnectAsync(_node.Address.Host, _node.Address.Port);
            var stream = socket.GetStream();
            var head = $"PUT /v1/modules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {_node.Key}\r\nContent-Length: 100000\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            await stream.WriteAsync(new byte[1000]);
        }
        var hash = await Upload(File.ReadAllBytes(Guests.Wasm("hello")));
        var (stdout, _, _, exitCode) = await Follow(await Submit(hash));
        Assert.Equal(0, exitCode);
        Assert.Equal("Hello from a Ferry guest!\n", stdout);
        Assert.Single(Directory.GetFiles(Path.Combine(_data.FullName, "modules")));
    }

    /// <summary>
    /// A module over a node's limit is refused before its bytes are sent (the client asks with Expect: 100-continue), with
    /// the node's reason and limit, not a connection reset halfway through the upload; one under it is taken.
    /// </summary>
    [Fact]
    public async Task A_module_over_the_nodes_limit_is_refused_with_the_limit_before_its_bytes_are_sent()
    {
        var data = Directory.CreateTempSubdirectory("ferry-node-small-");
        try
        {
            await using var small = await FerryNode.StartAsync(new NodeOptions
            {
                Name = "small",
                Listen = new IPEndPoint(IPAddress.Loopback, 0),
                DataDirectory = data.FullName,
                Workers = 1,
                MaxModuleBytes = 1 << 20,
            });
            using var client = new NodeClient(small.Address.ToString(), small.Key);
            var hello = File.ReadAllBytes(Guests.Wasm("hello"));
            var oversized = new byte[(32 << 20) + hello.Length];
            hello.CopyTo(oversized, 0);
            var refusal = await Assert.ThrowsAsync<NodeRequestException>(() => client.UploadModule(oversized));
            Assert.Equal(413, refusal.Status);
            Assert.Contains("this node accepts modules of up to 1,048,576 bytes", refusal.Message);
            Assert.Equal(64, (await client.UploadModule(hello)).Length);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    /// <summary>
    /// argv[0] is the program name the submission gives (ferry submit sends the module's file name, as ferry run passes it),
    /// which multi-call programs such as LLVM dispatch on; without one it is the module's hash.
    /// </summary>
    [Fact]
    public async Task Argv0_is_the_name_the_submission_gives_else_the_modules_hash()
    {
        // Writes its whole argument buffer (each argument NUL-terminated) to stdout.
        var hash = await Upload(Wat.ToWasm("""
            (module
              (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (func (export "_start")
                (drop (call $sizes (i32.const 0) (i32.const 4)))
                (drop (call $args (i32.const 64) (i32.const 1024)))
                (i32.store (i32.const 16) (i32.const 1024))
                (i32.store (i32.const 20) (i32.load (i32.const 4)))
                (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))
            """));
        var named = await _client.PostAsJsonAsync("/v1/processes", new { module = hash, args = new[] { "-v" }, argv0 = "clang" });
        Assert.Equal(HttpStatusCode.Created, named.StatusCode);
        var (stdout, _, _, _) = await Follow((await named.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        Assert.Equal("clang\0-v\0", stdout);
        (stdout, _, _, _) = await Follow(await Submit(hash, ["-v"]));
        Assert.Equal($"{hash}\0-v\0", stdout);
    }

    [Fact]
    public async Task A_process_sleeping_in_poll_oneoff_does_not_hold_a_worker()
    {
        // Sleeps 10 s through poll_oneoff (one relative clock subscription), then exits with 7.
        var sleeper = await Upload(Wat.ToWasm("""
            (module
              (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (func (export "_start")
                (i32.store8 (i32.const 8) (i32.const 0))
                (i32.store (i32.const 16) (i32.const 1))
                (i64.store (i32.const 24) (i64.const 10000000000))
                (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
                (call $exit (i32.const 7))))
            """));
        var hello = await Upload(File.ReadAllBytes(Guests.Wasm("hello")));
        var clock = Stopwatch.StartNew();
        var sleepers = new List<string>();
        for (var i = 0; i < 4; i++) sleepers.Add(await Submit(sleeper));
        var quick = new List<string>();
        for (var i = 0; i < 20; i++) quick.Add(await Submit(hello));
        foreach (var id in quick) Assert.Equal(0, (await Follow(id)).ExitCode);
        var quickDone = clock.Elapsed;
        // Workers held by the sleepers would have run the others only once the sleepers had ended.
        foreach (var id in sleepers)
        {
            var state = (await _client.GetFromJsonAsync<JsonElement>($"/v1/processes/{id}")).GetProperty("state").GetString();
            Assert.True(state is "Runnable" or "Running", $"sleeper {id} is {state} once the others are done, after {quickDone.TotalMilliseconds:F0} ms");
        }
        foreach (var id in sleepers) Assert.Equal(7, (await Follow(id)).ExitCode);
        var sleepersDone = clock.Elapsed;
        output.WriteLine($"with 2 workers and 4 processes sleeping 10 s: 20 others finished after {quickDone.TotalMilliseconds:F0} ms, the sleepers after {sleepersDone.TotalMilliseconds:F0} ms");
        Assert.True(sleepersDone >= TimeSpan.FromSeconds(10), "the sleepers did not sleep");
    }

    [Fact]
    public async Task Two_hundred_concurrent_processes_finish_and_a_busy_loop_starves_none_of_them()
    {
        var busy = await Upload(Wat.ToWasm("""
            (module (memory (export "memory") 1) (func (export "_start") (loop $forever (br $forever))))
            """));
        var hello = await Upload(File.ReadAllBytes(Guests.Wasm("args_env")));
        var spinner = await Submit(busy);
        var clock = Stopwatch.StartNew();
        var ids = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Submit(hello, [$"p{i}"])));
        var finishedAt = new double[ids.Length];
        await Task.WhenAll(ids.Select(async (id, i) =>
        {
            var (stdout, _, state, exitCode) = await Follow(id);
            finishedAt[i] = clock.Elapsed.TotalMilliseconds;
            Assert.Equal("Finished", state);
            Assert.Equal(1, exitCode);
            Assert.StartsWith($"arg 1: p{i}\n", stdout);
        }));
        output.WriteLine($"200 processes beside a busy loop: last finished after {finishedAt.Max():F0} ms, median {finishedAt.Order().ElementAt(100):F0} ms");
        var spinning = await _client.GetFromJsonAsync<JsonElement>($"/v1/processes/{spinner}");
        Assert.Contains(spinning.GetProperty("state").GetString(), new[] { "Runnable", "Running" });
        Assert.Equal(HttpStatusCode.Accepted, (await _client.DeleteAsync($"/v1/processes/{spinner}")).StatusCode);
        var (_, _, killed, _) = await Follow(spinner);
        Assert.Equal("Killed", killed);
    }
}
