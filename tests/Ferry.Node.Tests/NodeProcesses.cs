using System.Diagnostics;
using Ferry.Node.Client;

namespace Ferry.Node.Tests;

/// <summary>Real `ferry node` OS processes on 127.0.0.1, each with its own data directory under one temporary root.</summary>
public sealed class NodeProcesses : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("ferry-nodes-");

    public List<(string Name, string Address, Process Process)> Nodes { get; } = [];

    // The standard error of the nodes started with captureErrors, by name.
    private readonly Dictionary<string, System.Text.StringBuilder> _errors = [];

    /// <summary>A directory every node allows processes to preopen (--allow-dir), as a file system mounted on every machine.</summary>
    public string SharedDirectory => Directory.CreateDirectory(Path.Combine(_root.FullName, "shared")).FullName;

    /// <summary>The cluster key, created by the first node started.</summary>
    public string KeyFile => Path.Combine(_root.FullName, Nodes[0].Name, FerryNode.KeyFileName);

    /// <summary>
    /// Starts node <paramref name="name"/>, joining through <paramref name="join"/> (with the first node's key) unless null,
    /// with <paramref name="environment"/> added to its environment and <paramref name="arguments"/> to its command line.
    /// With <paramref name="captureErrors"/> its standard error is kept for <see cref="Errors"/>.
    /// </summary>
    public void Start(string name, string? join, IReadOnlyDictionary<string, string>? environment = null, IEnumerable<string>? arguments = null, bool captureErrors = false)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            // Port 0: the node binds a free port itself and says which (a port found free beforehand could be taken before the node bound it).
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "node", "start", "--name", name, "--listen", "127.0.0.1:0", "--data", Path.Combine(_root.FullName, name), "--allow-dir", SharedDirectory },
            RedirectStandardOutput = true,
            RedirectStandardError = captureErrors,
        };
        if (join is not null) foreach (var argument in new[] { "--join", join, "--key-file", KeyFile }) start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        foreach (var argument in arguments ?? []) start.ArgumentList.Add(argument);
        var process = Process.Start(start)!;
        if (captureErrors)
        {
            var errors = _errors[name] = new System.Text.StringBuilder();
            process.ErrorDataReceived += (_, line) =>
            {
                lock (errors) errors.AppendLine(line.Data);
            };
            process.BeginErrorReadLine();
        }
        var banner = process.StandardOutput.ReadLine();
        Assert.StartsWith($"ferry node {name} listening on http://", banner);
        var address = new Uri(banner!.Split(' ')[5].TrimEnd(';')).Authority;
        Nodes.Add((name, address, process));
    }

    public NodeClient Client(int index) => new(Nodes[index].Address, File.ReadAllText(KeyFile).Trim());

    /// <summary>What node <paramref name="index"/>, started with captureErrors, has written to its standard error so far.</summary>
    public string Errors(int index)
    {
        var errors = _errors[Nodes[index].Name];
        lock (errors) return errors.ToString();
    }

    public void Dispose()
    {
        foreach (var (_, _, process) in Nodes)
        {
            if (!process.HasExited) process.Kill();
            process.WaitForExit();
            process.Dispose();
        }
        _root.Delete(true);
    }
}
