using System.Diagnostics;

namespace Ferry.Wasi.Tests;

/// <summary>The sleep behind a guest's clock wait, in `ferry run` and the sliced host.</summary>
public sealed class PreciseSleepTests
{
    [Fact]
    public void A_precise_sleep_under_a_millisecond_lasts_at_least_its_duration()
    {
        // Thread.Sleep truncates to whole milliseconds: 0.6 ms became Sleep(0), a yield that returns at once.
        var start = Stopwatch.GetTimestamp();
        PreciseSleep.For(TimeSpan.FromMilliseconds(0.6));
        Assert.True(Stopwatch.GetElapsedTime(start) >= TimeSpan.FromMilliseconds(0.6));
    }
}
