using System.Diagnostics;
using Ferry.Tests.Shared;

namespace Ferry.Node.Tests;

/// <summary>A real `ferry node` OS process driven by the `ferry` client commands, as a user would.</summary>
public sealed class NodeProcessTests : IDisposable
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("ferry-nodeproc-");
    private readonly Process _node;
    private readonly string _address;

    public NodeProcessTests()
    {
        // Port 0: the node binds a free port itself and says which.
        _node = Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "node", "start", "--name", "b", "--listen", "127.0.0.1:0", "--data", _data.FullName },
            RedirectStandardOutput = true,
        })!;
        var banner = _node.StandardOutput.ReadLine();
        Assert.StartsWith("ferry node b listening on http://", banner);
        _address = new Uri(banner!.Split(' ')[5].TrimEnd(';')).Authority;
    }

    public void Dispose()
    {
        if (!_node.HasExited) _node.Kill();
        _node.WaitForExit();
        _node.Dispose();
        _data.Delete(true);
    }


    private Guests.Result Ferry(params string[] arguments) =>
        Guests.Ferry([.. arguments.Take(1), "--node", _address, "--key-file", Path.Combine(_data.FullName, FerryNode.KeyFileName), .. arguments.Skip(1)]);

    [Fact]
    public void Submit_wait_streams_the_output_and_exits_with_the_guests_code()
    {
        var result = Ferry("submit", "--wait", Guests.Wasm("args_env"), "one", "two");
        Assert.Equal("arg 1: one\narg 2: two\nFERRY_NOT_SET is unset\n", result.Text);
        Assert.Equal(2, result.ExitCode);
    }

    [Fact]
    public void A_submitted_process_is_listed_its_logs_read_and_a_running_one_killed()
    {
        var id = Ferry("submit", Guests.Wasm("dirtier"), "--mib", "1", "--seconds", "60", "--report", "1000000").Text.Trim();
        Assert.Matches("^b-[0-9]+$", id);
        Assert.Contains(id, Ferry("ps").Text);
        Assert.Equal(0, Ferry("kill", id).ExitCode);
        Ferry("logs", "-f", id);
        Assert.Matches($"{id} +Killed", Ferry("ps").Text);
        var missing = Ferry("logs", "b-999");
        Assert.Equal(125, missing.ExitCode);
        Assert.Contains("404 no process b-999", missing.Stderr);
    }

    [Fact]
    public void FERRY_KEY_may_hold_the_key_itself_or_the_path_of_its_file()
    {
        var keyFile = Path.Combine(_data.FullName, FerryNode.KeyFileName);
        foreach (var value in new[] { File.ReadAllText(keyFile).Trim(), keyFile })
        {
            var start = new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "ps", "--node", _address }, Environment = { ["FERRY_KEY"] = value } };
            var result = Guests.Run(start);
            Assert.True(result.ExitCode == 0, $"FERRY_KEY={value}: {result.Stderr}");
        }
    }

    [Fact]
    public void Clients_without_the_right_key_are_refused()
    {
        var wrong = Path.Combine(_data.FullName, "wrong.key");
        File.WriteAllText(wrong, "0123");
        var result = Guests.Ferry(["ps", "--node", _address, "--key-file", wrong]);
        Assert.Equal(125, result.ExitCode);
        Assert.Contains("401", result.Stderr);
    }
}
