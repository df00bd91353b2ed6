using System.Runtime;

namespace Ferry.Engine;

/// <summary>
/// Holds off garbage collections while a large module is instantiated: every function object it allocates survives, and
/// the small collections in between copied them and rescanned the store's growing arrays (LLVM's 130,000 functions:
/// 47-53 ms with them, 14-16 ms without). Process-wide, so best effort: another thread's pause, or its allocations
/// beyond the budget, end it early, and instantiation goes on as it would have.
/// </summary>
internal readonly struct CollectionPause : IDisposable
{
    private readonly bool _started;

    private CollectionPause(bool started) => _started = started;

    public static CollectionPause For(long bytes)
    {
        try
        {
            return new CollectionPause(GC.TryStartNoGCRegion(bytes));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException)
        {
            // Another thread holds a pause, or the budget exceeds what the collector can set aside.
            return default;
        }
    }

    public void Dispose()
    {
        if (!_started) return;
        try
        {
            if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
            // Allocations elsewhere outran the budget and a collection already ended the pause.
        }
    }
}
