namespace Ferry.Mobility.Migration;

/// <summary>How memory moves: all at the stop, in rounds before it, on demand after it, or rounds then on demand.</summary>
public enum MigrationStrategy : byte
{
    StopAndCopy = 1,
    PreCopy = 2,
    PostCopy = 3,
    Hybrid = 4,
}

/// <summary>The six stages of a migration transaction (DESIGN.md, after Clark et al.), plus its two ends.</summary>
public enum MigrationStage
{
    PreMigration,
    Reservation,
    IterativePreCopy,
    StopAndCopy,
    Commitment,
    Activation,
    /// <summary>Post-copy after activation: the target runs while the source pushes the remaining frames.</summary>
    PostCopyPush,
    Completed,
    Aborted,
}

public sealed record MigrationOptions
{
    public MigrationStrategy Strategy { get; init; } = MigrationStrategy.PreCopy;
    /// <summary>Pre-copy stops iterating once the estimated final stop fits this.</summary>
    public TimeSpan MaxDowntime { get; init; } = TimeSpan.FromMilliseconds(20);
    /// <summary>Pre-copy rounds at most (hybrid: the rounds before switching to post-copy).</summary>
    public int MaxRounds { get; init; } = 30;
    /// <summary>Rounds hybrid runs before it switches to post-copy.</summary>
    public int HybridRounds { get; init; } = 2;
    /// <summary>Memory transfer limit in bytes per second; 0 is unlimited.</summary>
    public long BandwidthBytesPerSecond { get; init; }
    /// <summary>Slow the guest while pre-copy rounds do not shrink, as QEMU's auto-converge does.</summary>
    public bool AutoConverge { get; init; }
    /// <summary>
    /// Pre-copy: the stop sends each dirtied frame as the 64-byte lines that changed since the last copy sent (QEMU's
    /// XBZRLE does likewise), at the cost of a digest per line on the source during the migration (an eighth of the memory's size).
    /// </summary>
    public bool StopDeltas { get; init; } = true;
    /// <summary>How long a post-copy target may wait for one fetched frame before it declares the source lost.</summary>
    public TimeSpan FetchTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// The longest either side waits for the other's next frame before it takes the peer for dead: a frozen node or a
    /// partition sends no reset, and a stopped process must not stay held for TCP's quarter of an hour of retries.
    /// </summary>
    public TimeSpan PeerSilence { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>A live view of a migration in progress, for progress displays.</summary>
public sealed record MigrationProgress(MigrationStage Stage, int Round, long DirtyFrames, double BytesPerSecond, TimeSpan EstimatedDowntime, long BytesSent, long FramesLeft);

/// <summary>One pre-copy round: frames sent (all-zero frames of round 0 are skipped, never sent), bytes, time, and what it left dirty.</summary>
public sealed record MigrationRound(int Number, long FramesSent, long ZeroFramesSkipped, long Bytes, TimeSpan Duration, long DirtiedDuring);

/// <summary>The source's account of a migration that committed.</summary>
public sealed record MigrationReport
{
    public required Guid Id { get; init; }
    public required MigrationStrategy Strategy { get; init; }
    public required TimeSpan Total { get; init; }
    /// <summary>Wall-clock time the process ran nowhere, as the source sees it: from its stop to the go-ahead's sending.</summary>
    public required TimeSpan Downtime { get; init; }
    /// <summary>
    /// <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> when the process stopped on the source: with the target's
    /// <see cref="TargetResult.ActivatedAt"/> on the same machine it gives the downtime until the target could run the process.
    /// </summary>
    public long StoppedAt { get; init; }
    public required long BytesSent { get; init; }
    public required IReadOnlyList<MigrationRound> Rounds { get; init; }
    /// <summary>Frames sent in the stop-and-copy stage (pre-copy's remainder, or everything for stop-and-copy).</summary>
    public required long StopFrames { get; init; }
    /// <summary>Of <see cref="StopFrames"/>, those sent as the lines that changed since the target's copy (pre-copy with <see cref="MigrationOptions.StopDeltas"/>).</summary>
    public long StopDeltaFrames { get; init; }
    public required long ZeroFramesSkipped { get; init; }
    /// <summary>Execution and resource segments, as sent at the stop.</summary>
    public required long StateBytes { get; init; }
    /// <summary>
    /// Post-copy: frames pushed after activation, faults the target took, and its time blocked on them. The target's
    /// acknowledgement carries the last two; if it failed its checksum, faults are the fault requests the source read and
    /// the blocked time is unknown (null).
    /// </summary>
    public long PostCopyFrames { get; init; }
    public long PostCopyFaults { get; init; }
    public TimeSpan? PostCopyBlocked { get; init; } = TimeSpan.Zero;
    /// <summary>Post-copy: frames sent more than once (the protocol sends each once; reported to prove it), which only a Resend causes.</summary>
    public long FramesSentTwice { get; init; }
    /// <summary>Post-copy: Resends answered, each after a pushed message failed its checksum at the target.</summary>
    public uint PushResends { get; init; }
    /// <summary>Post-copy: from activation to the target's acknowledgement of the last frame; the process depended on the source meanwhile.</summary>
    public TimeSpan SourceDependence { get; init; }
    /// <summary>Auto-converge: the smallest share of its normal speed the guest was held to.</summary>
    public double SlowestThrottle { get; init; } = 1;
}

/// <summary>The migration did not commit: the source still owns the process and has resumed it.</summary>
public sealed class MigrationAbortedException(MigrationStage stage, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The stage the migration had reached when it failed.</summary>
    public MigrationStage Stage { get; } = stage;
}

/// <summary>Post-copy lost its source before every frame arrived: the process cannot continue anywhere.</summary>
public sealed class PostCopySourceLostException(string message, Exception? inner = null) : Exception(message, inner);
