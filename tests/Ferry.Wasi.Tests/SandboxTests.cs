using Ferry.Tests.Shared;

namespace Ferry.Wasi.Tests;

/// <summary>A guest sees only its preopened directory: every way out is denied and the host is left untouched.</summary>
public sealed class SandboxTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("ferry-sandbox-");
    private readonly string _tree;
    private readonly string _outside;

    public SandboxTests()
    {
        _tree = Path.Combine(_root.FullName, "tree");
        _outside = Path.Combine(_root.FullName, "outside.txt");
        Directory.CreateDirectory(Path.Combine(_tree, "sub"));
        Directory.CreateDirectory(Path.Combine(_tree, "d"));
        File.WriteAllText(_outside, "secret");
        File.WriteAllText(Path.Combine(_tree, "inside.txt"), "hi");
        File.CreateSymbolicLink(Path.Combine(_tree, "link-absolute"), _outside);
        File.CreateSymbolicLink(Path.Combine(_tree, "link-up"), "..");
    }

    public void Dispose() => _root.Delete(recursive: true);

    private string[] Snapshot() =>
        [.. Directory.EnumerateFileSystemEntries(_root.FullName, "*", SearchOption.TopDirectoryOnly).Select(Path.GetFileName).Order()!];

    [Fact]
    public void Every_escape_attempt_is_denied_with_its_errno_and_the_host_is_untouched()
    {
        var before = Snapshot();
        var result = Guests.Ferry(["run", "--dir", $"{_tree}::/sandbox", Guests.Wasm("escape"), "/sandbox"]);
        Assert.Equal(0, result.ExitCode);
        var outcomes = result.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split(": ", 2)).ToDictionary(p => p[0], p => p[1]);
        string[] denied =
        [
            "dotdot", "absolute", "nested dotdot", "symlink to absolute", "symlink climbing out", "create absolute symlink",
            "follow created symlink", "mkdir outside", "rename outside", "unlink outside", "hard link outside", "opendir parent",
            "stat outside", "create through symlink",
        ];
        foreach (var attempt in denied) Assert.Equal("ENOTCAPABLE", outcomes[attempt]);
        Assert.Equal("OK", outcomes["inside still works"]);
        Assert.Equal(before, Snapshot());
        Assert.Equal("secret", File.ReadAllText(_outside));
        Assert.True(File.Exists(Path.Combine(_tree, "inside.txt")));
    }

    [Fact]
    public void A_directory_handle_does_not_follow_its_directory_when_the_host_moves_it_out_of_the_tree()
    {
        var movedTo = Path.Combine(_root.FullName, "moved");
        File.WriteAllText(Path.Combine(_tree, "d", "secret"), "inside secret");
        using var process = new System.Diagnostics.Process
        {
            StartInfo = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "run", "--dir", $"{_tree}::/sandbox", Guests.Wasm("escape"), "/sandbox", "wait" },
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
            },
        };
        process.Start();
        Assert.Equal("ready", process.StandardOutput.ReadLine());
        Directory.Move(Path.Combine(_tree, "d"), movedTo);
        process.StandardInput.WriteLine("go");
        process.StandardInput.Close();
        var line = process.StandardOutput.ReadLine();
        Assert.True(process.WaitForExit(30_000));
        Assert.Equal("moved directory handle: ENOENT", line);
    }

    [Fact]
    public void A_preopen_must_be_an_existing_directory()
    {
        var result = Guests.Ferry(["run", "--dir", Path.Combine(_root.FullName, "missing"), Guests.Wasm("hello")]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("is not a directory", result.Stderr);
    }
}
