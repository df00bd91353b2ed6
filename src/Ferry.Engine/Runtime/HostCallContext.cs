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
}
