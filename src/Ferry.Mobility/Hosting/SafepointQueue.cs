using System.Collections.Concurrent;

namespace Ferry.Mobility.Hosting;

/// <summary>
/// Actions that must run while a process executes no instruction. A host holds <see cref="Gate"/> for each slice
/// and calls <see cref="RunPending"/> between slices; an action queued while the gate is free runs at once.
/// </summary>
public sealed class SafepointQueue
{
    private readonly ConcurrentQueue<Action> _actions = new();

    /// <summary>Held by the host for the duration of a slice, and while it runs actions.</summary>
    public object Gate { get; } = new();

    /// <summary>Runs every queued action; the caller holds <see cref="Gate"/>.</summary>
    public void RunPending()
    {
        while (_actions.TryDequeue(out var action)) action();
    }

    /// <summary>Runs queued actions now if the gate is free; otherwise the holder runs them when its slice ends.</summary>
    public void RunIfIdle()
    {
        if (_actions.IsEmpty || !Monitor.TryEnter(Gate)) return;
        try
        {
            RunPending();
        }
        finally
        {
            Monitor.Exit(Gate);
        }
    }

    /// <summary>Queues <paramref name="action"/> for the next safepoint (at once, if the process is between slices) and returns its result.</summary>
    public Task<T> RunAsync<T>(Func<T> action, CancellationToken cancel)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _actions.Enqueue(() =>
        {
            try
            {
                result.TrySetResult(action());
            }
            catch (Exception e)
            {
                result.TrySetException(e);
            }
        });
        RunIfIdle();
        return result.Task.WaitAsync(cancel);
    }
}
