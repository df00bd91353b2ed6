using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Ferry.Node.Processes;

namespace Ferry.Node.Tests;

/// <summary>How a node wakes a process parked in a host call: never before its deadline, in deadline order, and at once when woken early.</summary>
public sealed class WakeTimerTests
{
    [Fact]
    public void Parked_processes_wake_in_deadline_order_and_none_before_its_deadline()
    {
        using var timer = new WakeTimer();
        // Once first, so that the deadlines below are not spent compiling the timer's code.
        using var warm = new ManualResetEventSlim();
        timer.Add(DateTime.UtcNow, new CancellationTokenSource(), warm.Set);
        Assert.True(warm.Wait(TimeSpan.FromSeconds(10)));
        var woken = new ConcurrentQueue<(int Index, long At)>();
        var start = Stopwatch.GetTimestamp();
        var now = DateTime.UtcNow;
        // Deadlines within the 4 ms step of .NET's timers of each other, added out of order; the first 200 ms away, so that a
        // test thread preempted while adding them still adds them all before any is due.
        var offsets = new[] { 206.5, 201.5, 204.5, 203.0, 220.0, 210.0 };
        var deadlines = offsets.Select(ms => now + TimeSpan.FromMilliseconds(ms)).ToArray();
        for (var i = 0; i < offsets.Length; i++)
        {
            var index = i;
            timer.Add(deadlines[i], new CancellationTokenSource(), () => woken.Enqueue((index, Stopwatch.GetTimestamp())));
        }
        SpinWait.SpinUntil(() => woken.Count == offsets.Length, TimeSpan.FromSeconds(10));
        Assert.Equal([1, 3, 2, 0, 5, 4], woken.Select(w => w.Index));
        foreach (var (index, at) in woken)
            Assert.True(Stopwatch.GetElapsedTime(start, at) >= deadlines[index] - now - TimeSpan.FromMilliseconds(0.1), $"entry {index} woke before its deadline");
    }

    [Fact]
    public void A_parked_process_woken_early_runs_at_once_and_only_once()
    {
        using var timer = new WakeTimer();
        var wakes = 0;
        var early = new CancellationTokenSource();
        // A deadline far enough away that a loaded machine still wakes the process by the cancellation well before it.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        timer.Add(deadline, early, () => Interlocked.Increment(ref wakes));
        early.Cancel();
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref wakes) == 1, TimeSpan.FromSeconds(4)), "not woken by the cancellation");
        Thread.Sleep(deadline - DateTime.UtcNow + TimeSpan.FromMilliseconds(500));
        Assert.Equal(1, Volatile.Read(ref wakes));
    }

    [Fact]
    public void A_process_woken_early_is_not_kept_alive_until_its_deadline()
    {
        using var timer = new WakeTimer();
        var process = ParkForAnHourAndWakeEarly(timer, out var woken);
        Assert.True(woken.Wait(TimeSpan.FromSeconds(10)), "not woken by the cancellation");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(process.IsAlive, "the timer still holds the woken process");
    }

    // Not inlined, so that no local of the test keeps the process alive.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference ParkForAnHourAndWakeEarly(WakeTimer timer, out ManualResetEventSlim woken)
    {
        var process = new byte[1 << 20];
        var done = woken = new ManualResetEventSlim();
        var early = new CancellationTokenSource();
        timer.Add(DateTime.UtcNow + TimeSpan.FromHours(1), early, () =>
        {
            GC.KeepAlive(process);
            done.Set();
        });
        early.Cancel();
        return new WeakReference(process);
    }
}
