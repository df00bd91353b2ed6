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
    /// <summary>Stopped for the node's shutdown, to be saved and resumed at its next start.</summary>
    Saved,
}

/// <summary>A process this node hosts: its execution, its WASI resources and its output log.</summary>
public sealed class HostedProcess(string id, Ferry.Wasm.Module module, Instance instance, IReadOnlyList<string> arguments, Execution execution, WasiProcess wasi, OutputLog output)
{
    private volatile bool _killRequested;
    private volatile bool _saveRequested;

    public string Id { get; } = id;
    public string ModuleHash => Module.Hash;
    internal Ferry.Wasm.Module Module { get; } = module;
    internal Instance Instance { get; } = instance;
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
    public bool Ended => State is ProcessState.Finished or ProcessState.Trapped or ProcessState.Killed or ProcessState.Saved;

    internal bool KillRequested => _killRequested;

    /// <summary>Set while the process waits, off the run queue, for a suspended host call to be worth retrying.</summary>
    internal CancellationTokenSource? Parked { get; set; }
    internal bool SaveRequested => _saveRequested;

    /// <summary>Stops the process at its next safepoint so that it can be saved; it ends as Saved.</summary>
    public void Save()
    {
        _saveRequested = true;
        Execution.RequestPause();
        Parked?.Cancel();
    }

    /// <summary>Stops the process at its next safepoint; it ends as Killed.</summary>
    public void Kill()
    {
        _killRequested = true;
        Execution.RequestPause();
        Parked?.Cancel();
    }
}
