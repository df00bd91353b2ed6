namespace Ferry.Node.Processes;

/// <summary>
/// The scheduler's run queue, first in first out; a worker with nothing to run waits on its monitor. Not a
/// BlockingCollection, whose take spins before it blocks: a process that sleeps a millisecond per iteration emptied the
/// queue each time, and a worker spun each time before it slept.
/// </summary>
internal sealed class RunQueue<T> where T : class
{
    private readonly Queue<T> _processes = new();
    private bool _completed;

    public int Count
    {
        get
        {
            lock (_processes) return _processes.Count;
        }
    }

    /// <summary>Adds <paramref name="process"/> at the tail and wakes one waiting worker; once completed, does nothing (the node is stopping).</summary>
    public void Add(T process)
    {
        lock (_processes)
        {
            if (_completed) return;
            _processes.Enqueue(process);
            Monitor.Pulse(_processes);
        }
    }

    /// <summary>The process at the head, waiting for one while the queue is empty; null once completed and empty.</summary>
    public T? Take()
    {
        lock (_processes)
        {
            while (_processes.Count == 0 && !_completed) Monitor.Wait(_processes);
            return _processes.Count > 0 ? _processes.Dequeue() : null;
        }
    }

    /// <summary>Takes no more processes; workers drain what is queued, then their takes return null.</summary>
    public void Complete()
    {
        lock (_processes)
        {
            _completed = true;
            Monitor.PulseAll(_processes);
        }
    }
}
