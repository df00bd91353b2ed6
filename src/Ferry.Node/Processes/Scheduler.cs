using System.Collections.Concurrent;
using Ferry.Engine;

namespace Ferry.Node.Processes;

/// <summary>
/// Many processes share a fixed pool of worker threads: each turn runs one fuel slice of the process at the head
/// of the run queue and puts it back at the tail, so a busy loop cannot starve the others.
/// </summary>
public sealed class Scheduler : IDisposable
{
    private readonly BlockingCollection<HostedProcess> _runQueue = [];
    private readonly Thread[] _workers;
    private readonly long _sliceFuel;

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

    public void Enqueue(HostedProcess process) => _runQueue.Add(process);

    private void Work()
    {
        foreach (var process in _runQueue.GetConsumingEnumerable())
        {
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
            process.State = ProcessState.Running;
            var status = process.Execution.Run(_sliceFuel);
            process.Slices++;
            switch (status)
            {
                case ExecutionStatus.OutOfFuel:
                    process.State = ProcessState.Runnable;
                    _runQueue.Add(process);
                    break;
                case ExecutionStatus.Paused when process.KillRequested:
                    End(process, ProcessState.Killed);
                    break;
                case ExecutionStatus.Paused when process.SaveRequested:
                    process.State = ProcessState.Saved;
                    break;
                case ExecutionStatus.HostSuspended:
                    // Waiting in a host call: the worker moves on; the process comes back when it may proceed.
                    process.State = ProcessState.Runnable;
                    Park(process, process.Execution.WakeAt ?? DateTime.UtcNow);
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

    private void Park(HostedProcess process, DateTime wakeAt)
    {
        var delay = wakeAt - DateTime.UtcNow;
        var wake = new CancellationTokenSource();
        process.Parked = wake;
        Task.Delay(delay > TimeSpan.Zero ? delay : TimeSpan.Zero, wake.Token).ContinueWith(_ =>
        {
            process.Parked = null;
            wake.Dispose();
            if (!_runQueue.IsAddingCompleted) _runQueue.Add(process);
        }, TaskScheduler.Default);
    }

    private static void End(HostedProcess process, ProcessState state)
    {
        process.State = state;
        process.Wasi.Dispose();
        process.Output.Close();
    }

    public void Dispose()
    {
        _runQueue.CompleteAdding();
        foreach (var worker in _workers) worker.Join(TimeSpan.FromSeconds(5));
        _runQueue.Dispose();
    }
}
