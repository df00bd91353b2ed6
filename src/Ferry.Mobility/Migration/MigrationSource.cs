using System.Buffers.Binary;
using System.Diagnostics;
using System.Numerics;
using System.Text;
using System.Threading.Channels;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Migration;

/// <summary>
/// The source side of a live migration over any duplex stream, as a transaction in the stages of DESIGN.md.
/// Until the target commits, every failure aborts and the process runs on here as if nothing happened; after
/// commitment the process belongs to the target (post-copy keeps serving its memory until the last frame is acknowledged).
/// </summary>
public sealed class MigrationSource
{
    private readonly Stream _connection;
    private readonly MigrationChannel _channel;
    private readonly IMigratableProcess _process;
    private readonly MigrationOptions _options;
    private readonly IProgress<MigrationProgress>? _progress;
    private readonly Stopwatch _total = new();
    private readonly List<MigrationRound> _rounds = [];
    private readonly FrameBatch _batch;
    // The batch being filled while _batch is sent, and the other way round.
    private readonly FrameBatch _spareBatch;
    // Functions the target has been told are on the process's call stack (the offer's, then each round's new ones).
    private readonly HashSet<uint> _namedToTarget = [];
    // Pre-copy: per frame, the 64-byte lines written since the copy the target holds (a word each), so that the stop
    // sends a dirtied frame's written lines only; null without StopDeltas.
    private ulong[]? _linesSinceSent;
    // The stop's FrameDeltas, made with _linesSinceSent: made at the stop, its half-megabyte buffer was allocated and zeroed
    // inside the downtime (the stop's sends took 0.9-3.8 ms against 0.5-1.5 ms, 256 MiB moderate, 9 runs each; no GC in either).
    private FrameDeltaBatch? _stopDeltas;
    private long _deltaFrames;
    private MigrationStage _stage = MigrationStage.PreMigration;
    private double _rate;
    private long _zeroSkipped;
    private double _throttle = 1;
    // Progress reported while the process is stopped, passed on once it runs again: a node turns each report into a line
    // on an HTTP stream, and serializing, sending and drawing it took CPU the stop needed.
    private List<MigrationProgress>? _heldReports;

    private MigrationSource(Stream connection, IMigratableProcess process, MigrationOptions options, IProgress<MigrationProgress>? progress)
    {
        _connection = connection;
        _channel = new MigrationChannel(connection, options.PeerSilence);
        _batch = new FrameBatch(_channel.GathersPieces);
        _spareBatch = new FrameBatch(_channel.GathersPieces);
        _process = process;
        _options = options;
        _progress = progress;
    }

    /// <summary>
    /// Migrates <paramref name="process"/> to the target at the other end of <paramref name="connection"/>. Returns once
    /// the migration is complete (for post-copy: once every frame is acknowledged); throws <see cref="MigrationAbortedException"/>
    /// when it did not commit, after the process has been released to run here again, and <see cref="MigrationAfterCommitException"/>
    /// when the connection failed after the commitment, after closing it.
    /// </summary>
    /// <param name="cancel">Abandons the migration before commitment (the process stays here); after it, it does nothing.</param>
    /// <param name="abandon">
    /// Ends the migration's part after commitment (the go-ahead, post-copy's push) at once, closing the connection: a
    /// post-copy process then loses the frames not yet pushed. A host that stops cancels <paramref name="cancel"/> at once
    /// and this one only when it can wait no longer for the push to finish.
    /// </param>
    public static Task<MigrationReport> MigrateAsync(Stream connection, IMigratableProcess process, MigrationOptions options, IProgress<MigrationProgress>? progress = null,
        CancellationToken cancel = default, CancellationToken abandon = default) =>
        new MigrationSource(connection, process, options, progress).RunAsync(cancel, abandon);

    private LinearMemory? Memory => _process.Instance.Memory;

    private void Report(long dirty = 0, TimeSpan estimate = default, long left = 0)
    {
        var progress = new MigrationProgress(_stage, _rounds.Count, dirty, _rate, estimate, _channel.BytesSent, left);
        if (_heldReports is not null) _heldReports.Add(progress);
        else _progress?.Report(progress);
    }

    /// <summary>Passes on the reports held while the process was stopped, in order; reports go straight out again.</summary>
    private void ReleaseHeldReports()
    {
        var held = _heldReports;
        _heldReports = null;
        foreach (var progress in held ?? []) _progress?.Report(progress);
    }

    private async Task<MigrationReport> RunAsync(CancellationToken cancel, CancellationToken abandon)
    {
        _total.Start();
        var id = Guid.NewGuid();
        long stopFrames = 0;
        long stateBytes = 0;
        long stoppedAt = 0;
        var downtime = TimeSpan.Zero;
        ulong[]? postCopyFrames = null;
        try
        {
            // Moved on before its last move's push ended, it would send the frames still at that source as zeros.
            if (Memory is { PresenceTracking: true }) throw new MigrationRefusedException("its memory is still arriving from its previous move (post-copy); it can move again once every frame is in");
            _stage = MigrationStage.Reservation;
            Report();
            var onStack = await _process.AtSafepointAsync(() => _process.Execution.FunctionsOnStack(MigrationTarget.MaxFunctionsOnStack), cancel);
            _namedToTarget.UnionWith(onStack);
            await _channel.SendAsync(MigrationFrame.Offer, Offer(id, onStack), cancel);
            var (answer, reason) = await _channel.ExpectAsync(cancel, MigrationFrame.Admit, MigrationFrame.Refuse);
            if (answer == MigrationFrame.Refuse) throw new MigrationRefusedException($"the target refused the process: {Encoding.UTF8.GetString(reason.Span)}");

            ulong[]? remaining = null;
            if (_options.Strategy is MigrationStrategy.PreCopy or MigrationStrategy.Hybrid && Memory is not null)
            {
                _stage = MigrationStage.IterativePreCopy;
                remaining = await PreCopyRoundsAsync(cancel);
            }

            _stage = MigrationStage.StopAndCopy;
            Report();
            var image = new MemoryStream();
            var (dirty, frameCount) = await _process.AtSafepointAsync(() =>
            {
                if (_process.Execution.Status is Ferry.Engine.ExecutionStatus.Finished or Ferry.Engine.ExecutionStatus.Trapped)
                    throw new MigrationRefusedException("the process ended before it could be stopped for the move");
                _process.Hold();
                stoppedAt = Stopwatch.GetTimestamp();
                var memory = Memory;
                ulong[]? harvested = null;
                if (memory is not null && memory.DirtyTracking)
                {
                    harvested = Harvest(memory);
                    memory.DirtyTracking = false;
                }
                Ferry.Mobility.ProcessSnapshot.Capture(image, _process.Module, _process.Instance, _process.Execution, _process.Wasi, embedCode: false, memoryFrames: false);
                return (harvested, memory?.FrameCount ?? 0);
            }, cancel);
            _heldReports = [];
            _process.Throttle(1);
            stateBytes = image.Length;
            // The image before the final frames: the target restores the process while they are still on their way.
            var bytes = image.GetBuffer().AsMemory(0, (int)image.Length);
            for (var at = 0; at < bytes.Length; at += FrameBatch.MaxFrames * LinearMemory.FrameSize)
            {
                await _channel.SendAsync(MigrationFrame.Image, bytes.Slice(at, Math.Min(FrameBatch.MaxFrames * LinearMemory.FrameSize, bytes.Length - at)), cancel);
            }

            switch (_options.Strategy)
            {
                case MigrationStrategy.StopAndCopy:
                    stopFrames = await SendFramesAsync(AllFrames(frameCount), ZeroFrames.Skipped, inPlace: true, cancel);
                    break;
                case MigrationStrategy.PreCopy when remaining is not null:
                    stopFrames = await SendStopFramesAsync(Union(remaining, dirty!), cancel);
                    break;
                case MigrationStrategy.PostCopy:
                    // Every frame is to come: the push sends an all-zero one as its bare number, and scanning for them now would lengthen the downtime.
                    postCopyFrames = AllFrames(frameCount);
                    break;
                case MigrationStrategy.Hybrid when remaining is not null:
                    // Frames dirtied since the last round come after activation, like all of post-copy's.
                    postCopyFrames = Union(remaining, dirty!);
                    break;
                default:
                    postCopyFrames = _options.Strategy == MigrationStrategy.Hybrid ? AllFrames(frameCount) : null;
                    break;
            }

            await _channel.SendAsync(MigrationFrame.ImageEnd, postCopyFrames is null ? ReadOnlyMemory<byte>.Empty : FrameSetPayload.Encode(postCopyFrames, frameCount), cancel);

            _stage = MigrationStage.Commitment;
            Report();
            var (verdict, detail) = await _channel.ExpectAsync(cancel, MigrationFrame.Committed, MigrationFrame.Abort);
            if (verdict == MigrationFrame.Abort) throw new MigrationRefusedException($"the target abandoned the migration: {Encoding.UTF8.GetString(detail.Span)}");
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or MigrationRefusedException or CaptureRefusedException or OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            var failedAt = _stage;
            ReleaseHeldReports();
            _stage = MigrationStage.Aborted;
            Report();
            await AbortAsync(id, e.Message);
            throw new MigrationAbortedException(failedAt, $"the migration failed in stage {failedAt} and was rolled back; the process continues on the source: {e.Message}", e);
        }

        // Commitment: from here the process is the target's, whatever happens to this connection.
        _process.GiveUp(id);
        _stage = MigrationStage.Activation;
        Report();
        var report = new MigrationReport
        {
            Id = id,
            Strategy = _options.Strategy,
            Total = TimeSpan.Zero,
            Downtime = TimeSpan.Zero,
            BytesSent = 0,
            Rounds = _rounds,
            StopFrames = stopFrames,
            StopDeltaFrames = _deltaFrames,
            ZeroFramesSkipped = _zeroSkipped,
            StateBytes = stateBytes,
            SlowestThrottle = _throttle,
        };
        try
        {
            await _channel.SendAsync(MigrationFrame.Activate, ReadOnlyMemory<byte>.Empty, abandon);
            downtime = Stopwatch.GetElapsedTime(stoppedAt);
            ReleaseHeldReports();
            if (postCopyFrames is not null)
            {
                _stage = MigrationStage.PostCopyPush;
                Report();
                var window = Stopwatch.StartNew();
                // Pushing at once took the CPU the target needed to receive the go-ahead: on 2 cores that doubled the downtime.
                try
                {
                    await _channel.ExpectAsync(abandon, MigrationFrame.Resumed);
                }
                catch (MigrationChecksumException e) when (e.Type == MigrationFrame.Resumed)
                {
                    // Resumed has no payload: only its trailer failed, and its type still says the target runs the process.
                }
                report = await PushAsync(postCopyFrames, report, abandon);
                report = report with { SourceDependence = window.Elapsed };
            }
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // Committed: the process is the target's; a failure now is the target's loss, reported, never a rerun here. The
            // connection is closed, its framing broken: a post-copy target learns at once that no frame will come, not at a fetch timeout.
            ReleaseHeldReports();
            await _connection.DisposeAsync();
            throw new MigrationAfterCommitException(_stage, $"the target committed, then the connection failed in stage {_stage}: {e.Message}", e);
        }
        _stage = MigrationStage.Completed;
        Report();
        return report with { Total = _total.Elapsed, Downtime = downtime, StoppedAt = stoppedAt, BytesSent = _channel.BytesSent };
    }

    /// <summary>
    /// Stage 2's offer: id, module hash, memory pages, strategy, the resources the target must grant, then the functions on
    /// the process's call stack (<paramref name="onStack"/>, innermost first) for the target to translate while the memory moves.
    /// </summary>
    private byte[] Offer(Guid id, uint[] onStack)
    {
        var configuration = _process.Wasi.Configuration;
        var directories = configuration.Preopens.Select(p => Encoding.UTF8.GetBytes(p.HostPath)).ToList();
        var offer = new byte[MigrationTarget.OfferFixedBytes + 2 + directories.Sum(d => 2 + d.Length) + 2 + FunctionsOnStackBytes(onStack)];
        id.TryWriteBytes(offer);
        Convert.FromHexString(_process.Module.Hash).CopyTo(offer, 16);
        BinaryPrimitives.WriteUInt32LittleEndian(offer.AsSpan(48), Memory?.Pages ?? 0);
        offer[52] = (byte)_options.Strategy;
        var at = MigrationTarget.OfferFixedBytes;
        BinaryPrimitives.WriteUInt16LittleEndian(offer.AsSpan(at), (ushort)directories.Count);
        at += 2;
        foreach (var directory in directories)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(offer.AsSpan(at), (ushort)directory.Length);
            directory.CopyTo(offer, at + 2);
            at += 2 + directory.Length;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(offer.AsSpan(at), (ushort)configuration.Listeners.Count);
        at += 2;
        WriteFunctionsOnStack(offer.AsSpan(at), onStack);
        return offer;
    }

    private static int FunctionsOnStackBytes(uint[] functions) => 2 + 4 * functions.Length;

    /// <summary>Functions on a call stack as the offer and a FunctionsOnStack message list them (the target's ParseFunctionsOnStack): u16 count, then a u32 index each.</summary>
    private static void WriteFunctionsOnStack(Span<byte> list, uint[] functions)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(list, (ushort)functions.Length);
        for (var i = 0; i < functions.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(list[(2 + 4 * i)..], functions[i]);
    }

    private async Task AbortAsync(Guid id, string reason)
    {
        await _channel.TryAbortAsync(reason);
        await _process.AtSafepointAsync(() =>
        {
            if (Memory is { } memory) memory.DirtyTracking = false;
            return 0;
        }, CancellationToken.None);
        _process.Throttle(1);
        _process.Release(id);
    }

    /// <summary>Stage 3: round 0 sends every non-zero frame, each later round the frames dirtied during the one before. Returns what is still dirty.</summary>
    private async Task<ulong[]> PreCopyRoundsAsync(CancellationToken cancel)
    {
        var frameCount = await _process.AtSafepointAsync(() =>
        {
            var memory = Memory!;
            memory.Dirty.ClearAll();
            memory.DirtyLines.ClearAll();
            if (_options.StopDeltas && _options.Strategy == MigrationStrategy.PreCopy) (_linesSinceSent, _stopDeltas) = (new ulong[memory.FrameCount], new FrameDeltaBatch());
            memory.DirtyTracking = true;
            return memory.FrameCount;
        }, cancel);
        var toSend = AllFrames(frameCount);
        var previousDirty = long.MaxValue;
        var notShrinking = 0;
        var maxRounds = _options.Strategy == MigrationStrategy.Hybrid ? Math.Min(_options.HybridRounds, _options.MaxRounds) : _options.MaxRounds;
        while (true)
        {
            var round = _rounds.Count;
            var clock = Stopwatch.StartNew();
            var bytesBefore = _channel.BytesSent;
            var zeroBefore = _zeroSkipped;
            var sent = await SendFramesAsync(toSend, round == 0 ? ZeroFrames.Skipped : ZeroFrames.Flagged, inPlace: false, cancel);
            var number = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(number, round);
            await _channel.SendAsync(MigrationFrame.RoundEnd, number, cancel);
            // Until the target has applied the round, its frames are still in flight: stopping then would add them to the downtime.
            var ack = (await _channel.ExpectAsync(cancel, MigrationFrame.RoundAck)).Payload;
            if (ack.Length != 4 || BinaryPrimitives.ReadInt32LittleEndian(ack.Span) != round) throw new MigrationProtocolException($"a RoundAck that does not acknowledge round {round}");
            var (dirty, onStack) = await _process.AtSafepointAsync(() =>
            {
                return (Harvest(Memory!), _process.Execution.FunctionsOnStack(MigrationTarget.MaxFunctionsOnStack));
            }, cancel);
            await NameNewFunctionsOnStackAsync(onStack, cancel);
            var dirtyCount = PopCount(dirty);
            var roundBytes = _channel.BytesSent - bytesBefore;
            // The rate that matters is the link's, end to end, for scattered dirty frames like the stop's: round 0 streams
            // whole memory faster, so the first dirty round replaces its rate, and later ones blend in.
            if (_rate <= 0 || roundBytes >= 1 << 20) _rate = round <= 1 ? roundBytes / clock.Elapsed.TotalSeconds : _rate * 0.5 + roundBytes / clock.Elapsed.TotalSeconds * 0.5;
            _rounds.Add(new MigrationRound(round, sent, _zeroSkipped - zeroBefore, roundBytes, clock.Elapsed, dirtyCount));
            var estimate = Estimate(dirtyCount);
            Report(dirtyCount, estimate, dirtyCount);
            toSend = dirty;
            // Not on round 0's rate alone: measured that way, the stop overran a 20 ms budget (26-31 ms at 256 MiB moderate).
            if (_rounds.Count >= maxRounds || round > 0 && estimate <= _options.MaxDowntime && _options.Strategy != MigrationStrategy.Hybrid) break;
            if (dirtyCount >= previousDirty)
            {
                notShrinking++;
                if (_options.AutoConverge)
                {
                    _throttle = Math.Max(0.02, _throttle * 0.5);
                    _process.Throttle(_throttle);
                }
                else if (notShrinking >= 2)
                {
                    break;
                }
            }
            previousDirty = dirtyCount;
        }
        return toSend;
    }

    /// <summary>The frames dirtied since the last harvest, their written lines added to <see cref="_linesSinceSent"/>; at a safepoint.</summary>
    private ulong[] Harvest(LinearMemory memory)
    {
        var harvested = memory.Dirty.Harvest();
        if (_linesSinceSent is not null) memory.DirtyLines.HarvestInto(harvested, ref _linesSinceSent);
        return harvested;
    }

    /// <summary>
    /// Names to the target the functions of <paramref name="onStack"/> (the call stack at a round's end, innermost first)
    /// that it has not been told of, for it to translate while the rounds go on, rather than inside the downtime if the
    /// process stops in it or when returned to just after: a function that runs long enough to be on the stack at a
    /// round's end may be large (CPython's interpreter loop, entered before the offer, is 106 KB of code).
    /// </summary>
    private async Task NameNewFunctionsOnStackAsync(uint[] onStack, CancellationToken cancel)
    {
        var fresh = onStack.Where(_namedToTarget.Add).ToArray();
        if (fresh.Length == 0) return;
        var payload = new byte[FunctionsOnStackBytes(fresh)];
        WriteFunctionsOnStack(payload, fresh);
        await _channel.SendAsync(MigrationFrame.FunctionsOnStack, payload, cancel);
    }

    /// <summary>Time to send this many frames plus the execution state at the rate measured so far.</summary>
    private TimeSpan Estimate(long frames) =>
        _rate <= 0 ? TimeSpan.MaxValue : TimeSpan.FromSeconds((frames * (4.0 + LinearMemory.FrameSize) + 64 * 1024) / _rate);

    /// <summary>
    /// Sends the frames set in <paramref name="frames"/>, in batches, at most at the configured bandwidth; returns how many
    /// were sent. <paramref name="inPlace"/>: the guest is held, so its frames go out uncopied.
    /// <para>
    /// A scan for zero frames to skip (round 0, stop-and-copy) reads the whole memory: the next batch
    /// is scanned, copied and checksummed on another core while the kernel sends this one. One thread doing both held a
    /// 256 MiB round 0 to 2.5 GB/s, a third of its time in reading cold guest memory, and the stop-and-copy of 256 MiB
    /// took 170-220 ms instead of 130.
    /// </para>
    /// </summary>
    private async Task<long> SendFramesAsync(ulong[] frames, ZeroFrames zeros, bool inPlace, CancellationToken cancel)
    {
        var memory = Memory;
        if (memory is null) return 0;
        var left = PopCount(frames);
        long sent = 0;
        var clock = Stopwatch.StartNew();
        long bytes = 0;
        using var next = FrameBitmap.SetFrames(frames).GetEnumerator();
        FrameBatch Fill(FrameBatch batch, int limit)
        {
            batch.Clear();
            while (batch.Count < limit && next.MoveNext())
            {
                left--;
                if (next.Current >= memory.FrameCount) continue;
                if (batch.Add(memory, next.Current, zeros, inPlace, _linesSinceSent)) sent++;
                else _zeroSkipped++;
            }
            return batch;
        }
        (FrameBatch Batch, IReadOnlyList<ReadOnlyMemory<byte>> Pieces, uint Checksum) Prepare(FrameBatch batch, int limit)
        {
            var pieces = Fill(batch, limit).Pieces;
            return (batch, pieces, MigrationChannel.Checksum(MigrationFrame.Frames, pieces));
        }
        var spare = _spareBatch;
        var filled = Prepare(_batch, inPlace ? FirstStopMessageFrames : FrameBatch.MaxFrames);
        for (var flushes = 1; filled.Batch.Count > 0; flushes++)
        {
            var into = spare;
            var preparing = Task.Run(() => Prepare(into, FrameBatch.MaxFrames), CancellationToken.None);
            try
            {
                bytes += await FlushAsync(MigrationFrame.Frames, filled.Pieces, filled.Checksum, clock, bytes, cancel);
            }
            finally
            {
                // Never left running after a failure: it reads the guest's memory and the frame set, both the caller's again then.
                var following = await preparing;
                spare = filled.Batch;
                filled = following;
            }
            if (flushes % 16 == 0) Report(left: left);
        }
        return sent;
    }

    /// <summary>
    /// Pre-copy's stop: sends each frame of <paramref name="frames"/> as the 64-byte lines written since the copy the
    /// target holds (FrameDeltas) or, when most of it was written or lines are not tracked, whole (Frames, uncopied from
    /// the held guest's memory); returns how many went. At 256 MiB under moderate load a dirtied frame differed from the
    /// target's copy in one or two 8-byte words: whole, the stop sent about 4.3 MB where its changes were about 12 KB.
    /// <para>
    /// One thread reads the frames, sends each message, then checksums it from this core's cache, where the kernel's copy
    /// just left it. A checksum beforehand, on a third thread on 2 cores shared with the target's receive, read the frames
    /// from memory, and the send waited for it: 0.7-3.1 ms of a 4-10 ms stop.
    /// </para>
    /// </summary>
    private async Task<long> SendStopFramesAsync(ulong[] frames, CancellationToken cancel)
    {
        var memory = Memory;
        if (memory is null) return 0;
        var left = PopCount(frames);
        long sent = 0;
        var clock = Stopwatch.StartNew();
        long bytes = 0;
        var messages = 0;
        // Made together with the line words, so both or neither.
        var (lines, deltas) = (_linesSinceSent, _stopDeltas);
        // The first message of the stop is short whichever kind it is: see FirstStopMessageFrames.
        int Limit(int most) => messages == 0 ? FirstStopMessageFrames : most;
        async Task Flush(MigrationFrame type, IReadOnlyList<ReadOnlyMemory<byte>> pieces)
        {
            bytes += await FlushAsync(type, pieces, null, clock, bytes, cancel);
            if (++messages % 16 == 0) Report(left: left);
        }
        _batch.Clear();
        foreach (var frame in FrameBitmap.SetFrames(frames))
        {
            left--;
            if (frame >= memory.FrameCount) continue;
            sent++;
            if (deltas is not null && deltas.TryAdd(memory, frame, frame < lines!.Length ? lines[frame] : ulong.MaxValue))
            {
                _deltaFrames++;
                if (deltas.Count < Limit(FrameDeltaBatch.MaxFrames)) continue;
                await Flush(MigrationFrame.FrameDeltas, [deltas.Payload]);
                deltas.Clear();
                continue;
            }
            _batch.Add(memory, frame, ZeroFrames.Sent, inPlace: true);
            if (_batch.Count < Limit(FrameBatch.MaxFrames)) continue;
            await Flush(MigrationFrame.Frames, _batch.Pieces);
            _batch.Clear();
        }
        if (_batch.Count > 0) await Flush(MigrationFrame.Frames, _batch.Pieces);
        if (deltas is { Count: > 0 }) await Flush(MigrationFrame.FrameDeltas, [deltas.Payload]);
        (_linesSinceSent, _stopDeltas) = (null, null);
        return sent;
    }

    /// <summary>
    /// Frames in the stop's first Frames message, fewer than a full one: the target begins restoring the process when that
    /// message's header arrives, which a full message's scan and checksum over cold guest memory delayed by 0.4-1.5 ms.
    /// </summary>
    private const int FirstStopMessageFrames = 16;

    /// <summary>Sends one Frames (or FrameDeltas) message, with its <paramref name="checksum"/> or, for a held guest's frames (null), the checksum after it.</summary>
    private async Task<long> FlushAsync(MigrationFrame type, IReadOnlyList<ReadOnlyMemory<byte>> pieces, uint? checksum, Stopwatch clock, long bytesSoFar, CancellationToken cancel)
    {
        var before = _channel.BytesSent;
        await _channel.SendAsync(type, pieces, checksum, cancel);
        var length = _channel.BytesSent - before;
        if (_options.BandwidthBytesPerSecond > 0)
        {
            var due = TimeSpan.FromSeconds((double)(bytesSoFar + length) / _options.BandwidthBytesPerSecond) - clock.Elapsed;
            if (due > TimeSpan.Zero) await Task.Delay(due, cancel);
        }
        return length;
    }

    /// <summary>Post-copy: frames pushed but not yet reported received, at most (512 KiB: a faulted frame waits behind about 0.2 ms of them).</summary>
    internal const int PushWindow = 128;

    /// <summary>
    /// Post-copy after activation: pushes every frame of <paramref name="frames"/> once, frames the target faulted on first
    /// and then onward from the latest fault, until the target acknowledges the last; again, the frames a Resend names.
    /// </summary>
    private async Task<MigrationReport> PushAsync(ulong[] frames, MigrationReport report, CancellationToken cancel)
    {
        var memory = Memory;
        var pending = (ulong[])frames.Clone();
        var left = PopCount(pending);
        var total = left;
        var requests = Channel.CreateUnbounded<long>();
        // A Resend's bitmap: null for one that failed its checksum, which is answered by pushing every frame again.
        var resends = Channel.CreateUnbounded<ulong[]?>();
        // Woken by a request, a Resend or progress: the push waits on it while its window is full, or for the acknowledgement.
        var wake = new SemaphoreSlim(0);
        long received = 0;
        var acknowledged = new TaskCompletionSource<(long Faults, TimeSpan? Blocked)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var listener = Task.Run(async () =>
        {
            long requestsRead = 0;
            uint resendsRead = 0;
            try
            {
                while (true)
                {
                    MigrationFrame type;
                    ReadOnlyMemory<byte> payload;
                    try
                    {
                        (type, payload) = await _channel.ExpectAsync(cancel, MigrationFrame.FrameRequest, MigrationFrame.PushProgress, MigrationFrame.PushAck, MigrationFrame.Resend);
                    }
                    catch (MigrationChecksumException e) when (e.Type is MigrationFrame.FrameRequest or MigrationFrame.PushProgress)
                    {
                        // The push sends the requested frame anyway, and the next PushProgress counts everything this one did.
                        continue;
                    }
                    catch (MigrationChecksumException e) when (e.Type == MigrationFrame.PushAck)
                    {
                        // The target sends it only once every frame is in, and nothing after it: the push is over, but the
                        // target's own figures are lost (faults are then the requests read here, blocked time unknown).
                        acknowledged.TrySetResult((requestsRead, null));
                        return;
                    }
                    catch (MigrationChecksumException e) when (e.Type == MigrationFrame.Resend)
                    {
                        // Resends are numbered in order, so this one is the next; its bitmap is unreadable, so every frame goes again.
                        resendsRead++;
                        resends.Writer.TryWrite(null);
                        wake.Release();
                        continue;
                    }
                    if (type == MigrationFrame.PushAck)
                    {
                        if (payload.Length != 16) throw new MigrationProtocolException($"a PushAck of {payload.Length} bytes");
                        acknowledged.TrySetResult((BinaryPrimitives.ReadInt64LittleEndian(payload.Span), TimeSpan.FromTicks(BinaryPrimitives.ReadInt64LittleEndian(payload.Span[8..]))));
                        return;
                    }
                    if (type == MigrationFrame.PushProgress)
                    {
                        if (payload.Length != 8) throw new MigrationProtocolException($"a PushProgress of {payload.Length} bytes");
                        Volatile.Write(ref received, BinaryPrimitives.ReadInt64LittleEndian(payload.Span));
                    }
                    else if (type == MigrationFrame.Resend)
                    {
                        if (payload.Length < 4) throw new MigrationProtocolException($"a Resend of {payload.Length} bytes");
                        var number = BinaryPrimitives.ReadUInt32LittleEndian(payload.Span);
                        if (number != resendsRead + 1) throw new MigrationProtocolException($"Resend {number} after {resendsRead}");
                        var (count, absent) = FrameSetPayload.Parse(payload.Span[4..], "a Resend");
                        if (count != memory!.FrameCount) throw new MigrationProtocolException($"a Resend for {count} frames, the memory has {memory.FrameCount}");
                        resendsRead = number;
                        resends.Writer.TryWrite(absent);
                    }
                    else
                    {
                        if (payload.Length != 4) throw new MigrationProtocolException($"a FrameRequest of {payload.Length} bytes");
                        requestsRead++;
                        requests.Writer.TryWrite(BinaryPrimitives.ReadUInt32LittleEndian(payload.Span));
                    }
                    wake.Release();
                }
            }
            catch (Exception e)
            {
                acknowledged.TrySetException(e);
                requests.Writer.TryComplete();
                wake.Release();
            }
        }, cancel);

        // The process is given up here, so its memory no longer changes: frames go out in place.
        long cursor = 0;
        long pushed = 0;
        // Frames pushed again for a Resend: their first copies may never be counted received, so the window leaves them out.
        long repeated = 0;
        uint resendsAnswered = 0;
        uint? endSentFor = null;
        const int PushBatch = 16;
        _batch.Clear();
        while (true)
        {
            if (acknowledged.Task.IsFaulted) await acknowledged.Task;
            while (resends.Reader.TryRead(out var absent))
            {
                resendsAnswered++;
                // Every frame of the push that the target lacks and that is not pending already (frames outside the push are never absent there).
                for (var i = 0; i < pending.Length; i++)
                {
                    var again = (absent is null ? ~0UL : i < absent.Length ? absent[i] : 0) & frames[i] & ~pending[i];
                    pending[i] |= again;
                    var count = System.Numerics.BitOperations.PopCount(again);
                    left += count;
                    repeated += count;
                }
            }
            while (requests.Reader.TryRead(out var wanted))
            {
                if (!Take(pending, wanted)) continue;
                _batch.Add(memory!, wanted, ZeroFrames.Flagged, inPlace: true);
                left--;
                // Locality: the frames after a fault are the likeliest next ones.
                cursor = wanted + 1;
            }
            if (_batch.Count == 0 && left == 0)
            {
                if (acknowledged.Task.IsCompleted) break;
                if (endSentFor != resendsAnswered)
                {
                    var end = new byte[12];
                    BinaryPrimitives.WriteInt64LittleEndian(end, total);
                    BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(8), resendsAnswered);
                    await _channel.SendAsync(MigrationFrame.PushEnd, end, cancel);
                    endSentFor = resendsAnswered;
                }
                // The acknowledgement, or a Resend for frames that failed their checksum on the way.
                await Task.WhenAny(wake.WaitAsync(cancel), acknowledged.Task);
                cancel.ThrowIfCancellationRequested();
                continue;
            }
            // A window, not a queue: a requested frame waits behind at most PushWindow frames, not behind the socket buffers' megabytes.
            var inFlight = pushed - repeated + _batch.Count - Volatile.Read(ref received);
            if (_batch.Count == 0 && inFlight >= PushWindow)
            {
                var woken = await Task.WhenAny(wake.WaitAsync(cancel), acknowledged.Task);
                // A cancelled wait returns at once: going round again would spin, whether or not the listener still runs.
                cancel.ThrowIfCancellationRequested();
                if (woken == acknowledged.Task && acknowledged.Task.IsCompletedSuccessfully)
                    throw new MigrationProtocolException($"a PushAck with {left} frames still to push");
                continue;
            }
            while (_batch.Count < PushBatch && left > 0 && inFlight++ < PushWindow)
            {
                var next = NextSet(pending, cursor);
                if (next < 0) next = NextSet(pending, 0);
                Take(pending, next);
                _batch.Add(memory!, next, ZeroFrames.Flagged, inPlace: true);
                left--;
                cursor = next + 1;
            }
            pushed += _batch.Count;
            var pieces = _batch.Pieces;
            await FlushAsync(MigrationFrame.Frames, pieces, MigrationChannel.Checksum(MigrationFrame.Frames, pieces), Stopwatch.StartNew(), 0, cancel);
            _batch.Clear();
            if ((pushed & 4095) < PushBatch) Report(left: left);
        }
        var (faults, blocked) = await acknowledged.Task;
        await listener;
        return report with { PostCopyFrames = pushed, PostCopyFaults = faults, PostCopyBlocked = blocked, FramesSentTwice = pushed - total, PushResends = resendsAnswered };
    }

    private static bool Take(ulong[] bits, long frame)
    {
        if (frame < 0 || (frame >> 6) >= bits.Length) return false;
        var mask = 1UL << (int)(frame & 63);
        if ((bits[frame >> 6] & mask) == 0) return false;
        bits[frame >> 6] &= ~mask;
        return true;
    }

    private static long NextSet(ulong[] bits, long from)
    {
        for (var word = from >> 6; word < bits.Length; word++)
        {
            var value = bits[word];
            if (word == from >> 6) value &= ulong.MaxValue << (int)(from & 63);
            if (value != 0) return (word << 6) + BitOperations.TrailingZeroCount(value);
        }
        return -1;
    }

    private static long PopCount(ulong[] bits)
    {
        long count = 0;
        foreach (var word in bits) count += BitOperations.PopCount(word);
        return count;
    }

    /// <summary>A bitmap of frames [0, frameCount), filled a word at a time: bit by bit, 1 GiB took post-copy's stop 0.3-0.6 ms.</summary>
    private static ulong[] AllFrames(long frameCount)
    {
        var bits = new ulong[(frameCount + 63) >> 6];
        Array.Fill(bits, ulong.MaxValue);
        if ((frameCount & 63) != 0) bits[^1] = (1UL << (int)(frameCount & 63)) - 1;
        return bits;
    }

    private static ulong[] Union(ulong[] a, ulong[] b)
    {
        var result = new ulong[Math.Max(a.Length, b.Length)];
        for (var i = 0; i < result.Length; i++) result[i] = (i < a.Length ? a[i] : 0) | (i < b.Length ? b[i] : 0);
        return result;
    }
}

/// <summary>The target said no (refusal at reservation, or abandonment before commitment).</summary>
internal sealed class MigrationRefusedException(string message) : Exception(message);

/// <summary>The target committed, then the connection failed: the process is the target's; the source must not run it again.</summary>
public sealed class MigrationAfterCommitException(MigrationStage stage, string message, Exception? inner = null) : Exception(message, inner)
{
    public MigrationStage Stage { get; } = stage;
}
