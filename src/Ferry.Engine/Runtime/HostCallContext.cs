using Ferry.Engine.Memory;

namespace Ferry.Engine;

/// <summary>What a host function can see of its caller.</summary>
public sealed class HostCallContext
{
    internal HostCallContext(Execution execution) => Execution = execution;

    public Execution Execution { get; }
    /// <summary>The instance whose code made the call, or null when the host function was invoked directly.</summary>
    public Instance? Caller { get; internal set; }
    /// <summary>The caller's memory 0, if it has one.</summary>
    public LinearMemory? Memory => Caller?.Memory;

    internal bool SuspendRequested { get; set; }
    internal DateTime? WakeAt { get; set; }

    /// <summary>
    /// Instead of blocking, the host function asks to be called again later: the run stops with status
    /// HostSuspended before the call, and the call is made again, from the start, when the run resumes.
    /// Results written by this call are ignored. <paramref name="wakeAt"/> (UTC) says when retrying makes sense.
    /// </summary>
    public void Suspend(DateTime? wakeAt = null)
    {
        SuspendRequested = true;
        WakeAt = wakeAt;
    }
}
