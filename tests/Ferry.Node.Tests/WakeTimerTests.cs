using System.Collections.Concurrent;
using System.Diagnostics;
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
        // Deadlines within the 4 ms step of .NET's timers of each other, added out of order.
        var offsets = new[] { 6.5, 1.5, 4.5, 3.0, 20.0, 10.0 };
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
        timer.Add(DateTime.UtcNow + TimeSpan.FromMilliseconds(300), early, () => Interlocked.Increment(ref wakes));
        early.Cancel();
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref wakes) == 1, TimeSpan.FromMilliseconds(200)), "not woken by the cancellation");
        Thread.Sleep(400);
        Assert.Equal(1, Volatile.Read(ref wakes));
    }
}
