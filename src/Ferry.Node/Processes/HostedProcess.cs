using Ferry.Engine;
using Ferry.Wasi;

namespace Ferry.Node.Processes;

public enum ProcessState
{
    Runnable,
    Running,
    Finished,
    Trapped,
    Killed,
}

/// <summary>A process this node hosts: its execution, its WASI resources and its output log.</summary>
public sealed class HostedProcess(string id, string moduleHash, IReadOnlyList<string> arguments, Execution execution, WasiProcess wasi, OutputLog output)
{
    private volatile bool _killRequested;

    public string Id { get; } = id;
    public string ModuleHash { get; } = moduleHash;
    public IReadOnlyList<string> Arguments { get; } = arguments;
    public DateTimeOffset Created { get; } = DateTimeOffset.UtcNow;
    public OutputLog Output { get; } = output;
    internal Execution Execution { get; } = execution;
    internal WasiProcess Wasi { get; } = wasi;

    public ProcessState State { get; internal set; }
    public int? ExitCode { get; internal set; }
    public string? Error { get; internal set; }
    /// <summary>Fuel slices this process has run, a measure of progress under the scheduler.</summary>
    public long Slices { get; internal set; }
    public long InstructionsExecuted => Execution.InstructionsExecuted;
    public bool Ended => State is ProcessState.Finished or ProcessState.Trapped or ProcessState.Killed;

    internal bool KillRequested => _killRequested;

    /// <summary>Stops the process at its next safepoint; it ends as Killed.</summary>
    public void Kill()
    {
        _killRequested = true;
        Execution.RequestPause();
    }
}
