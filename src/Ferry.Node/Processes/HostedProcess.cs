using Ferry.Engine;
using Ferry.Mobility.Hosting;
using Ferry.Mobility.Migration;
using Ferry.Wasi;

namespace Ferry.Node.Processes;

public enum ProcessState
{
    Runnable,
    Running,
    /// <summary>Stopped on request (or after its instruction budget): it keeps its place and continues on request.</summary>
    Stopped,
    /// <summary>Held at a safepoint while a migration stops and copies it.</summary>
    Migrating,
    Finished,
    Trapped,
    Killed,
    /// <summary>Stopped for the node's shutdown, to be saved and resumed at its next start.</summary>
    Saved,
    /// <summary>Migrated away: another node runs it now (see MovedTo).</summary>
    Moved,
    /// <summary>Received by a migration that committed, but the source's go-ahead never came and the source cannot tell: held, never run.</summary>
    InDoubt,
    /// <summary>Post-copy lost its source before every memory frame arrived: it cannot continue anywhere.</summary>
    Lost,
}

/// <summary>
/// A process this node hosts: its execution, its WASI resources and its output log. The scheduler runs it in slices
/// under <see cref="Gate"/>; a migration acts on it between slices through <see cref="IMigratableProcess"/>.
/// </summary>
public sealed class HostedProcess(string id, Ferry.Wasm.Module module, Instance instance, IReadOnlyList<string> arguments, Execution execution, WasiProcess wasi, OutputLog output) : IMigratableProcess
{
    private volatile bool _killRequested;
    private volatile bool _saveRequested;
    private double _share = 1;
    // The execution segment and memory, until the process ends and no migration reads them.
    private Instance? _instance = instance;
    private Execution? _execution = execution;
    private long _instructionsAtRelease;
    private bool _migrating;

    public string Id { get; } = id;
    public string ModuleHash => Module.Hash;
    public Ferry.Wasm.Module Module { get; } = module;
    public Instance Instance => _instance ?? throw Released();
    public IReadOnlyList<string> Arguments { get; } = arguments;
    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;
    public OutputLog Output { get; } = output;
    public Execution Execution => _execution ?? throw Released();
    public WasiProcess Wasi { get; } = wasi;

    public ProcessState State { get; internal set; }
    public int? ExitCode { get; internal set; }
    public string? Error { get; internal set; }
    /// <summary>The node it moved to, once it has.</summary>
    public string? MovedTo { get; internal set; }
    /// <summary>Fuel slices this process has run, a measure of progress under the scheduler.</summary>
    public long Slices { get; internal set; }
    // Read once: a release between a check and a use would otherwise lose the count.
    public long InstructionsExecuted => Volatile.Read(ref _execution)?.InstructionsExecuted ?? Volatile.Read(ref _instructionsAtRelease);
    public bool Ended => State is ProcessState.Finished or ProcessState.Trapped or ProcessState.Killed or ProcessState.Saved or ProcessState.Moved or ProcessState.Lost;

    internal bool KillRequested => _killRequested;
    internal bool SaveRequested => _saveRequested;
    /// <summary>Safepoint actions; their gate is taken by a worker for each slice.</summary>
    internal SafepointQueue Safepoints { get; } = new();
    internal object Gate => Safepoints.Gate;
    /// <summary>Held by a migration: not to run until released.</summary>
    internal bool Held { get; private set; }
    /// <summary>Stopped on request or at the end of its budget.</summary>
    internal bool StopRequested { get; set; }
    /// <summary>Instructions left before it stops on its own (null: no limit).</summary>
    internal long? Budget { get; set; }
    /// <summary>A worker found it held or stopped and left it out of the run queue; whoever lets it run again enqueues it.</summary>
    internal bool Dropped { get; set; }
    internal double Share => Volatile.Read(ref _share);
    /// <summary>Post-copy: fetches the frames still at the source.</summary>
    internal PostCopyPager? Pager { get; set; }
    /// <summary>Set while the process waits, off the run queue, for a suspended host call to be worth retrying.</summary>
    internal CancellationTokenSource? Parked { get; set; }
    /// <summary>Puts the process back on the run queue (set by the scheduler that owns it).</summary>
    internal Action<HostedProcess>? Requeue { get; set; }
    /// <summary>Told when a migration of this process commits (the node records the decision and the new location).</summary>
    internal Action<HostedProcess, Guid>? Committed { get; set; }
    /// <summary>Told when a migration of this process aborts.</summary>
    internal Action<HostedProcess, Guid>? Aborted { get; set; }

    private InvalidOperationException Released() => new($"process {Id} has ended ({State}): its execution segment and memory were given back");

    /// <summary>Claims the process for one migration: false if it has ended, is in doubt, or another migration has it.</summary>
    internal bool TryBeginMigration()
    {
        lock (Gate)
        {
            if (Ended || State == ProcessState.InDoubt || _migrating) return false;
            _migrating = true;
            return true;
        }
    }

    /// <summary>The migration that claimed the process is over, however it ended.</summary>
    internal void EndMigration()
    {
        lock (Gate) _migrating = false;
        ReleaseIfEnded();
    }

    /// <summary>
    /// An ended process keeps its record (state, exit code, error, instruction count, output) and gives back its memory and
    /// execution segment: a node kept every finished process's memory (five runs of the lisp guest: 300 MB to 919 MB resident).
    /// Not while a migration still reads them (it calls this when it finishes), nor once saved (shutdown snapshots it).
    /// </summary>
    internal void ReleaseIfEnded()
    {
        lock (Gate)
        {
            if (!Ended || State == ProcessState.Saved || _migrating || _execution is null) return;
            Volatile.Write(ref _instructionsAtRelease, _execution.InstructionsExecuted);
            Volatile.Write(ref _execution, null);
            _instance = null;
            Pager = null;
        }
    }

    /// <summary>Stops the process at its next safepoint so that it can be saved; it ends as Saved.</summary>
    public void Save()
    {
        _saveRequested = true;
        Wake();
    }

    /// <summary>Stops the process at its next safepoint; it ends as Killed.</summary>
    public void Kill()
    {
        _killRequested = true;
        Wake();
    }

    /// <summary>Stops the process at its next safepoint; it stays, stopped, until <see cref="Continue"/>.</summary>
    public void Stop()
    {
        lock (Gate) StopRequested = true;
        _execution?.RequestPause();
    }

    /// <summary>Lets a stopped process run, for <paramref name="instructions"/> more (then it stops again) or without limit.</summary>
    public void Continue(long? instructions)
    {
        lock (Gate)
        {
            if (Ended) return;
            StopRequested = false;
            Budget = instructions;
            if (State == ProcessState.Stopped) State = ProcessState.Runnable;
        }
        Wake();
    }

    private void Wake()
    {
        _execution?.RequestPause();
        Parked?.Cancel();
        lock (Gate)
        {
            if (!Dropped) return;
            Dropped = false;
        }
        Requeue?.Invoke(this);
    }

    public Task<T> AtSafepointAsync<T>(Func<T> action, CancellationToken cancel) => Safepoints.RunAsync(action, cancel);

    public void Hold()
    {
        Held = true;
        if (!Ended) State = ProcessState.Migrating;
    }

    public void Release(Guid migration)
    {
        lock (Gate)
        {
            Held = false;
            if (State == ProcessState.Migrating) State = StopRequested ? ProcessState.Stopped : ProcessState.Runnable;
        }
        Aborted?.Invoke(this, migration);
        if (!StopRequested) Wake();
    }

    public void Throttle(double share) => Volatile.Write(ref _share, Math.Clamp(share, 0.01, 1));

    public void GiveUp(Guid migration)
    {
        lock (Gate)
        {
            State = ProcessState.Moved;
        }
        Committed?.Invoke(this, migration);
    }
}
