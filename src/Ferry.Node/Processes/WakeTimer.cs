using System.Diagnostics;
using Ferry.Wasi;

namespace Ferry.Node.Processes;

/// <summary>
/// Wakes parked processes when their host call may proceed, on one thread that sleeps to the earliest deadline. .NET's
/// timers fire in steps of the kernel's tick (4 ms here): a guest's 1 ms nanosleep took 4.1 ms per call through
/// Task.Delay, and a wait under 1 ms, cut to none, sent the process straight back to wait again, spinning both cores
/// (a node running dirtier with 1 ms sleeps used 7.9 s of CPU in 4 s). This thread waits on its monitor while the
/// deadline is far and sleeps precisely for the last milliseconds.
/// </summary>
internal sealed class WakeTimer : IDisposable
{
    // Beyond this, a coarse monitor wait (4 ms steps) brings the thread near the deadline; within it, precise sleeps.
    private static readonly TimeSpan PreciseSpan = TimeSpan.FromMilliseconds(6);
    // A precise sleep lasts at most this long, so that an earlier deadline parked meanwhile is late by no more.
    private static readonly TimeSpan PreciseStep = TimeSpan.FromMilliseconds(1);

    private readonly PriorityQueue<Entry, long> _due = new();
    private readonly object _gate = new();
    private bool _disposed;

    public WakeTimer() => new Thread(Run) { IsBackground = true, Name = "ferry-wake-timer" }.Start();

    /// <summary>Calls <paramref name="wake"/> once: at <paramref name="wakeAt"/>, or on a pool thread as soon as <paramref name="early"/> is cancelled.</summary>
    public void Add(DateTime wakeAt, CancellationTokenSource early, Action wake)
    {
        var entry = new Entry(wake);
        var due = Stopwatch.GetTimestamp() + (long)((wakeAt - DateTime.UtcNow).TotalSeconds * Stopwatch.Frequency);
        early.Token.Register(() => ThreadPool.QueueUserWorkItem(_ => entry.Fire()));
        lock (_gate)
        {
            _due.Enqueue(entry, due);
            if (_due.Peek() == entry) Monitor.Pulse(_gate);
        }
    }

    private void Run()
    {
        var ready = new List<Entry>();
        while (true)
        {
            TimeSpan wait;
            lock (_gate)
            {
                while (!_disposed && _due.Count == 0) Monitor.Wait(_gate);
                if (_disposed) return;
                var now = Stopwatch.GetTimestamp();
                while (_due.TryPeek(out var entry, out var due) && due <= now) ready.Add(_due.Dequeue());
                wait = _due.TryPeek(out _, out var next) ? Stopwatch.GetElapsedTime(now, next) : TimeSpan.Zero;
                if (ready.Count == 0 && wait > PreciseSpan)
                {
                    Monitor.Wait(_gate, wait - PreciseSpan);
                    continue;
                }
            }
            foreach (var entry in ready) entry.Fire();
            ready.Clear();
            PreciseSleep.For(wait < PreciseStep ? wait : PreciseStep);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Monitor.Pulse(_gate);
        }
    }

    private sealed class Entry(Action wake)
    {
        // Dropped when called: an entry woken early stays queued until its deadline, and must not keep its process alive so long.
        private Action? _wake = wake;

        public void Fire() => Interlocked.Exchange(ref _wake, null)?.Invoke();
    }
}
