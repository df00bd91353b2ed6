using Ferry.Engine;
using Ferry.Mobility.Migration;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Mobility.Hosting;

/// <summary>How a process hosted by <see cref="SlicedProcess"/> ended.</summary>
public enum SlicedOutcome
{
    Finished,
    Trapped,
    /// <summary>It migrated away: the target committed and this copy gave up.</summary>
    MovedAway,
    /// <summary>Post-copy lost the source before every frame arrived.</summary>
    Lost,
}

/// <summary>
/// A process run in fuel slices on a thread of its own: the simplest host for live migration in an embedding, a
/// benchmark or a test (the node uses its shared scheduler instead). Safepoint actions run between slices.
/// </summary>
public sealed class SlicedProcess : IMigratableProcess
{
    private readonly SafepointQueue _safepoints = new();
    private readonly TaskCompletionSource<SlicedOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _sliceFuel;
    private readonly PostCopyPager? _pager;
    private bool _held;
    private bool _givenUp;
    private double _share = 1;

    public SlicedProcess(Module module, Instance instance, Execution execution, WasiProcess wasi, long sliceFuel = 1_000_000, PostCopyPager? pager = null)
    {
        Module = module;
        Instance = instance;
        Execution = execution;
        Wasi = wasi;
        _sliceFuel = sliceFuel;
        _pager = pager;
    }

    public static SlicedProcess FromRestored(RestoredProcess restored, PostCopyPager? pager = null, long sliceFuel = 1_000_000) =>
        new(restored.Module, restored.Instance, restored.Execution, restored.Wasi, sliceFuel, pager);

    public Module Module { get; }
    public Instance Instance { get; }
    public Execution Execution { get; }
    public WasiProcess Wasi { get; }
    /// <summary>Why the process stopped, once it has; the error of a trap or a lost post-copy is in <see cref="Error"/>.</summary>
    public Task<SlicedOutcome> Completion => _completion.Task;
    public string? Error { get; private set; }
    /// <summary>Post-copy faults this process waited on, and the time it waited.</summary>
    public long FaultWaits { get; private set; }

    public void Start() => new Thread(Loop) { IsBackground = true, Name = "ferry-sliced-process" }.Start();

    private void Loop()
    {
        while (true)
        {
            ExecutionStatus status;
            double share;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            lock (_safepoints.Gate)
            {
                _safepoints.RunPending();
                while (_held && !_givenUp)
                {
                    Monitor.Wait(_safepoints.Gate);
                    _safepoints.RunPending();
                }
                if (_givenUp)
                {
                    _completion.TrySetResult(SlicedOutcome.MovedAway);
                    return;
                }
                share = Volatile.Read(ref _share);
                clock.Restart();
                status = Execution.Run(Math.Max(10_000, (long)(_sliceFuel * share)));
            }
            switch (status)
            {
                case ExecutionStatus.OutOfFuel or ExecutionStatus.Paused:
                    // Auto-converge: a guest held to a share of its speed sleeps for the rest of its slice's time.
                    if (share < 1) PreciseSleep.For(clock.Elapsed * (1 / share - 1));
                    break;
                case ExecutionStatus.HostSuspended:
                    var wait = (Execution.WakeAt ?? DateTime.UtcNow) - DateTime.UtcNow;
                    PreciseSleep.For(wait < TimeSpan.FromMilliseconds(50) ? wait : TimeSpan.FromMilliseconds(50));
                    break;
                case ExecutionStatus.FrameAbsent:
                    FaultWaits++;
                    try
                    {
                        if (_pager is null) throw new PostCopySourceLostException($"memory frame {Execution.AbsentFrame} is absent and no post-copy source can send it");
                        _pager.WaitPresent(Execution.AbsentFrame);
                    }
                    catch (PostCopySourceLostException e)
                    {
                        End(SlicedOutcome.Lost, e.Message);
                        return;
                    }
                    break;
                case ExecutionStatus.Finished:
                    End(SlicedOutcome.Finished, null);
                    return;
                case ExecutionStatus.Trapped:
                    End(SlicedOutcome.Trapped, Execution.Trap!.Message);
                    return;
            }
        }
    }

    private void End(SlicedOutcome outcome, string? error)
    {
        Error = error;
        lock (_safepoints.Gate) _safepoints.RunPending();
        _completion.TrySetResult(outcome);
    }

    public Task<T> AtSafepointAsync<T>(Func<T> action, CancellationToken cancel) => _safepoints.RunAsync(action, cancel);

    public void Hold() => _held = true;

    public void Release(Guid migration)
    {
        lock (_safepoints.Gate)
        {
            _held = false;
            Monitor.PulseAll(_safepoints.Gate);
        }
    }

    public void Throttle(double share) => Volatile.Write(ref _share, Math.Clamp(share, 0.01, 1));

    public void GiveUp(Guid migration)
    {
        lock (_safepoints.Gate)
        {
            _givenUp = true;
            Monitor.PulseAll(_safepoints.Gate);
        }
    }
}
