using System.Diagnostics;
using System.Net;
using Ferry.Node.Client;

namespace Ferry.Node.Tests;

/// <summary>Real `ferry node` OS processes on 127.0.0.1, each with its own data directory under one temporary root.</summary>
public sealed class NodeProcesses : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("ferry-nodes-");

    public List<(string Name, string Address, Process Process)> Nodes { get; } = [];

    /// <summary>A directory every node allows processes to preopen (--allow-dir), as a file system mounted on every machine.</summary>
    public string SharedDirectory => Directory.CreateDirectory(Path.Combine(_root.FullName, "shared")).FullName;

    /// <summary>The cluster key, created by the first node started.</summary>
    public string KeyFile => Path.Combine(_root.FullName, Nodes[0].Name, FerryNode.KeyFileName);

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// Starts node <paramref name="name"/>, joining through <paramref name="join"/> (with the first node's key) unless null,
    /// with <paramref name="environment"/> added to its environment and <paramref name="arguments"/> to its command line.
    /// </summary>
    public void Start(string name, string? join, IReadOnlyDictionary<string, string>? environment = null, IEnumerable<string>? arguments = null)
    {
        var address = $"127.0.0.1:{FreePort()}";
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll"), "node", "start", "--name", name, "--listen", address, "--data", Path.Combine(_root.FullName, name), "--allow-dir", SharedDirectory },
            RedirectStandardOutput = true,
        };
        if (join is not null) foreach (var argument in new[] { "--join", join, "--key-file", KeyFile }) start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        foreach (var argument in arguments ?? []) start.ArgumentList.Add(argument);
        var process = Process.Start(start)!;
        Assert.StartsWith($"ferry node {name} listening on", process.StandardOutput.ReadLine());
        Nodes.Add((name, address, process));
    }

    public NodeClient Client(int index) => new(Nodes[index].Address, File.ReadAllText(KeyFile).Trim());

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
