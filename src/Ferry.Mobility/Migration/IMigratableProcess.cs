using Ferry.Engine;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Mobility.Migration;

/// <summary>
/// A process as the source side of a live migration sees its host: the host runs it in slices on its own threads,
/// and the migration acts on it only at safepoints, between slices, while no instruction runs.
/// </summary>
public interface IMigratableProcess
{
    Module Module { get; }
    Instance Instance { get; }
    Execution Execution { get; }
    WasiProcess Wasi { get; }

    /// <summary>Runs <paramref name="action"/> while the process executes nothing (between slices, parked, or held), and returns its result.</summary>
    Task<T> AtSafepointAsync<T>(Func<T> action, CancellationToken cancel);

    /// <summary>Called inside a safepoint action: the process does not run again until <see cref="Release"/>.</summary>
    void Hold();

    /// <summary>Migration <paramref name="migration"/> aborted: a held process runs again, at full speed.</summary>
    void Release(Guid migration);

    /// <summary>Auto-converge: run the guest at this share (0..1] of its normal speed.</summary>
    void Throttle(double share);

    /// <summary>
    /// The target committed migration <paramref name="migration"/>: this copy must never run again (a host records the
    /// decision, for a target in doubt to ask). Its memory stays readable until the migration returns.
    /// </summary>
    void GiveUp(Guid migration);
}
