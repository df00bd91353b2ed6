using System.Diagnostics;
using Ferry.Engine;
using Ferry.Mobility.Migration;

namespace Ferry.Node.Processes;

/// <summary>
/// Many processes share a fixed pool of worker threads: each turn runs one fuel slice of the process at the head
/// of the run queue and puts it back at the tail, so a busy loop cannot starve the others. A process waiting in a
/// host call or on a post-copy fault is parked off the queue; one that is stopped or held by a migration is dropped
/// from it until whoever lets it run again puts it back.
/// </summary>
public sealed class Scheduler : IDisposable
{
    private readonly RunQueue<HostedProcess> _runQueue = new();
    private readonly Thread[] _workers;
    private readonly long _sliceFuel;
    private readonly WakeTimer _wakeTimer = new();

    public Scheduler(int workers, long sliceFuel)
    {
        _sliceFuel = sliceFuel;
        _workers = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"ferry-worker-{i}" };
            _workers[i].Start();
        }
    }

    /// <summary>Processes waiting for a worker (the run-queue length that the node publishes as its load).</summary>
    public int RunQueueLength => _runQueue.Count;

    public void Enqueue(HostedProcess process)
    {
        process.Requeue ??= Enqueue;
        _runQueue.Add(process);
    }

    private void Work()
    {
        while (_runQueue.Take() is { } process)
        {
            ExecutionStatus status;
            var clock = Stopwatch.StartNew();
            double share;
            lock (process.Gate)
            {
                process.Safepoints.RunPending();
                if (process.Ended || process.State == ProcessState.InDoubt) continue;
                if (process.KillRequested)
                {
                    End(process, ProcessState.Killed);
                    continue;
                }
                if (process.SaveRequested)
                {
                    process.State = ProcessState.Saved;
                    continue;
                }
                if (process.Budget == 0)
                {
                    // The budget is spent: it is now stopped like any other, until it is told to continue.
                    process.StopRequested = true;
                    process.Budget = null;
                }
                if (process.Held || process.StopRequested)
                {
                    process.Dropped = true;
                    if (!process.Held) process.State = ProcessState.Stopped;
                    continue;
                }
                process.State = ProcessState.Running;
                share = process.Share;
                var fuel = Math.Max(10_000, (long)(_sliceFuel * share));
                if (process.Budget is { } budget) fuel = Math.Min(fuel, budget);
                var before = process.Execution.InstructionsExecuted;
                status = process.Execution.Run(fuel);
                if (process.Budget is not null) process.Budget -= process.Execution.InstructionsExecuted - before;
                process.Slices++;
                if (status is ExecutionStatus.OutOfFuel or ExecutionStatus.Paused) process.State = ProcessState.Runnable;
            }
            // An action queued during the slice runs now rather than at the next one.
            process.Safepoints.RunIfIdle();
            switch (status)
            {
                case ExecutionStatus.OutOfFuel or ExecutionStatus.Paused:
                    // Auto-converge: a process held to a share of its speed waits out the rest of its slice's time.
                    if (share < 1) Park(process, DateTime.UtcNow + clock.Elapsed * (1 / share - 1));
                    else Enqueue(process);
                    break;
                case ExecutionStatus.HostSuspended:
                    // Waiting in a host call: the worker moves on; the process comes back when it may proceed.
                    process.State = ProcessState.Runnable;
                    Park(process, process.Execution.WakeAt ?? DateTime.UtcNow);
                    break;
                case ExecutionStatus.FrameAbsent:
                    AwaitFrame(process);
                    break;
                case ExecutionStatus.Finished:
                    process.ExitCode = process.Execution.ExitCode ?? 0;
                    End(process, ProcessState.Finished);
                    break;
                case ExecutionStatus.Trapped:
                    process.Error = process.Execution.Trap!.Message;
                    process.Output.Append(2, System.Text.Encoding.UTF8.GetBytes($"ferry: trap: {process.Error}\n"));
                    End(process, ProcessState.Trapped);
                    break;
                default:
                    process.Error = $"stopped with {status}";
                    End(process, ProcessState.Trapped);
                    break;
            }
        }
    }

    /// <summary>Post-copy: only this process waits, off the queue, while its frame is fetched ahead of the push.</summary>
    private void AwaitFrame(HostedProcess process)
    {
        var frame = process.Execution.AbsentFrame;
        var fetch = process.Pager?.WhenPresentAsync(frame) ?? Task.FromException(new PostCopySourceLostException($"memory frame {frame} is absent and no post-copy source can send it"));
        fetch.ContinueWith(done =>
        {
            if (done.IsCompletedSuccessfully)
            {
                Enqueue(process);
                return;
            }
            var cause = done.Exception?.InnerException;
            process.Error = cause is TimeoutException ? $"memory frame {frame} did not arrive in time: post-copy lost its source" : cause?.Message ?? "post-copy lost its source";
            process.Output.Append(2, System.Text.Encoding.UTF8.GetBytes($"ferry: {process.Error}\n"));
            End(process, ProcessState.Lost);
        }, TaskScheduler.Default);
    }

    private void Park(HostedProcess process, DateTime wakeAt)
    {
        var wake = new CancellationTokenSource();
        process.Parked = wake;
        // Not disposed: a Wake racing with the end of the wait may still cancel it (a disposed one threw, and the
        // exception escaped an aborted migration's rollback); without a timer it holds nothing to release.
        _wakeTimer.Add(wakeAt, wake, () =>
        {
            process.Parked = null;
            Enqueue(process);
        });
    }

    private static void End(HostedProcess process, ProcessState state)
    {
        process.State = state;
        process.Wasi.Dispose();
        process.Output.Close();
        process.ReleaseIfEnded();
    }

    public void Dispose()
    {
        _wakeTimer.Dispose();
        _runQueue.Complete();
        foreach (var worker in _workers) worker.Join(TimeSpan.FromSeconds(5));
    }
}
