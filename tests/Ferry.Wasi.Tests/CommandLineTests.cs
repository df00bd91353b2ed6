using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Tests.Shared;

namespace Ferry.Wasi.Tests;

/// <summary>`ferry run` as a user meets it: exit codes, messages, sockets.</summary>
public sealed class CommandLineTests
{
    private static string WriteModule(string wat)
    {
        var path = Path.Combine(TemporaryDirectories.Create("ferry-module-"), "module.wasm");
        File.WriteAllBytes(path, Wat.ToWasm(wat));
        return path;
    }

    [Fact]
    public void An_unknown_wasi_import_fails_at_instantiation_naming_the_function()
    {
        var module = WriteModule("""
            (module (import "wasi_snapshot_preview1" "fd_teleport" (func (param i32) (result i32)))
                    (memory (export "memory") 1) (func (export "_start")))
            """);
        var result = Guests.Ferry(["run", module]);
        Assert.Equal(125, result.ExitCode);
        Assert.Contains("unknown import: wasi_snapshot_preview1.fd_teleport", result.Stderr);
    }

    [Fact]
    public void A_trap_prints_the_message_with_function_name_and_offset_and_exits_134()
    {
        var module = WriteModule("""
            (module (memory (export "memory") 1)
              (func $crash (i32.store (i32.const 70000) (i32.const 1)))
              (func (export "_start") (call $crash)))
            """);
        var result = Guests.Ferry(["run", module]);
        Assert.Equal(134, result.ExitCode);
        Assert.Matches("^ferry: trap: out of bounds memory access in function 0 'crash' at byte 0x[0-9a-f]+", result.Stderr);
    }

    [Fact]
    public void A_malformed_module_is_reported_with_exit_2()
    {
        var path = TemporaryDirectories.Remember(Path.GetTempFileName());
        File.WriteAllBytes(path, [0x00, 0x61, 0x73, 0x6D, 0x02, 0x00, 0x00, 0x00]);
        var result = Guests.Ferry(["run", path]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("unknown binary version", result.Stderr);
    }

    [Fact]
    public void Arguments_after_the_module_reach_the_guest_even_when_they_look_like_ferry_options()
    {
        var result = Guests.Ferry(["run", "--env", "FERRY_COLOR=blue", Guests.Wasm("args_env"), "-h", "--fuel", "5", "--env", "FERRY_X=1", "--help"]);
        Assert.Equal(6, result.ExitCode);
        Assert.Equal("arg 1: -h\narg 2: --fuel\narg 3: 5\narg 4: --env\narg 5: FERRY_X=1\narg 6: --help\nenv: FERRY_COLOR=blue\nFERRY_NOT_SET is unset\n", Encoding.UTF8.GetString(result.Stdout));
    }

    [Fact]
    public void A_double_dash_after_the_module_still_ends_ferrys_options()
    {
        var result = Guests.Ferry(["run", Guests.Wasm("args_env"), "--", "-v"]);
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("arg 1: -v\n", Encoding.UTF8.GetString(result.Stdout));
    }

    [Fact]
    public void Fuel_stops_the_run_with_exit_124()
    {
        var result = Guests.Ferry(["run", "--fuel", "1000", Guests.Wasm("dirtier")]);
        Assert.Equal(124, result.ExitCode);
        Assert.Contains("out of fuel after 1,000 instructions", result.Stderr);
    }

    /// <summary>A guest that writes <paramref name="text"/> to stderr and then loops until its fuel runs out.</summary>
    private static string ProgressThenLoop(string text) => WriteModule($$"""
        (module (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\10\00\00\00\{{text.Length:x2}}\00\00\00")
          (data (i32.const 16) "{{text.Replace("\n", "\\0a")}}")
          (func (export "_start")
            (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
            (loop $forever (br $forever))))
        """);

    [Theory]
    [InlineData("working...", "working...\nferry: out of fuel")]
    [InlineData("done\n", "done\nferry: out of fuel")]
    public void Ferrys_closing_message_starts_a_line_of_its_own_after_the_guests_output(string guestText, string expected)
    {
        var result = Guests.Ferry(["run", "--fuel", "1000", ProgressThenLoop(guestText)]);
        Assert.Equal(124, result.ExitCode);
        Assert.StartsWith(expected, result.Stderr);
    }

    [Fact]
    public void The_demo_runs_a_query_on_a_three_node_cluster_and_a_guest_moved_between_stores_and_checks_both()
    {
        var result = Guests.Ferry(["demo", "--slice", "50000000"], timeout: TimeSpan.FromMinutes(3));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("200000 records, 50119 in north", result.Text);
        Assert.Contains("c pulled the code once", result.Text);
        Assert.Contains("identical", result.Text);
    }

    [Fact]
    public void The_echo_server_serves_clients_on_a_granted_listening_socket()
    {
        using var process = new System.Diagnostics.Process
        {
            StartInfo = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "run", "--tcplisten", "127.0.0.1:0", Guests.Wasm("echo_server"), "2" },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            },
        };
        process.Start();
        try
        {
            // Port 0: the kernel picks a free one and ferry says which (a port found free beforehand could be taken meanwhile).
            var announced = process.StandardError.ReadLine() ?? "";
            Assert.StartsWith("ferry: --tcplisten 127.0.0.1:0 listens on 127.0.0.1:", announced);
            var port = int.Parse(announced[(announced.LastIndexOf(':') + 1)..]);
            Assert.StartsWith("echo_server: listening on fd", process.StandardOutput.ReadLine());
            for (var client = 0; client < 2; client++)
            {
                using var socket = new TcpClient();
                socket.Connect(IPAddress.Loopback, port);
                var stream = socket.GetStream();
                var message = Encoding.ASCII.GetBytes(new string((char)('a' + client), 10_000));
                stream.Write(message);
                socket.Client.Shutdown(SocketShutdown.Send);
                var echoed = new MemoryStream();
                stream.CopyTo(echoed);
                Assert.Equal(message, echoed.ToArray());
                Assert.Equal($"echo_server: connection {client + 1} echoed 10000 bytes", process.StandardOutput.ReadLine());
            }
            Assert.True(process.WaitForExit(30_000));
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
    }
}
