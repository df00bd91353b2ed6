using Ferry.Node.Processes;

namespace Ferry.Node.Tests;

/// <summary>The scheduler's run queue: first in first out, a take waits for an add, and completion lets workers drain it and stop.</summary>
public sealed class RunQueueTests
{
    [Fact]
    public void Processes_are_taken_in_the_order_they_were_added()
    {
        var queue = new RunQueue<string>();
        queue.Add("a");
        queue.Add("b");
        queue.Add("c");
        Assert.Equal(3, queue.Count);
        Assert.Equal("a", queue.Take());
        Assert.Equal("b", queue.Take());
        Assert.Equal("c", queue.Take());
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public async Task A_take_on_an_empty_queue_waits_for_the_next_add()
    {
        var queue = new RunQueue<string>();
        var taking = Task.Run(queue.Take);
        Assert.NotSame(taking, await Task.WhenAny(taking, Task.Delay(100)));
        queue.Add("a");
        Assert.Equal("a", await taking.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Completion_lets_workers_drain_the_queue_then_stop_and_ignores_later_adds()
    {
        var queue = new RunQueue<string>();
        var waiting = Task.Run(queue.Take);
        var alsoWaiting = Task.Run(queue.Take);
        var delay = Task.Delay(100);
        Assert.Same(delay, await Task.WhenAny(waiting, alsoWaiting, delay));
        queue.Complete();
        Assert.Null(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Null(await alsoWaiting.WaitAsync(TimeSpan.FromSeconds(10)));

        var draining = new RunQueue<string>();
        draining.Add("a");
        draining.Complete();
        draining.Add("b");
        Assert.Equal("a", draining.Take());
        Assert.Null(draining.Take());
    }
}
