using System.Buffers.Binary;
using System.Text;
using Ferry.Engine;
using Ferry.Engine.Memory;
using Ferry.Mobility.Snapshots;
using Ferry.Wasm;

namespace Ferry.Mobility.Migration;

/// <summary>
/// What the source offers in stage 2 (reservation): besides the code and memory size, the resources the process will
/// ask the target to grant (its preopened host directories, its listening sockets), so that a target refuses at once
/// what it would refuse only after the whole memory had moved. The image's resource segment is checked again at restore.
/// <paramref name="FunctionsOnStack"/>: the module indices of the functions on the process's call stack when it was
/// offered, innermost first, which the target translates while the memory moves (empty from a source that names none).
/// </summary>
public sealed record MigrationOffer(Guid Id, string ModuleHash, uint MemoryPages, MigrationStrategy Strategy, IReadOnlyList<string> Directories, int Listeners,
    IReadOnlyList<uint> FunctionsOnStack);

/// <summary>The target's answer to an offer: the loaded module to admit it with, or the reason it is refused.</summary>
public sealed record Admission(Module? Module, string? Refusal)
{
    public static Admission Admit(Module module) => new(module, null);
    public static Admission Refuse(string reason) => new(null, reason);
}

public enum TargetOutcome
{
    /// <summary>The process is restored here and may run (stage 6, activation).</summary>
    Activated,
    /// <summary>Refused at reservation, or abandoned before commitment: nothing is kept here.</summary>
    NotReceived,
    /// <summary>Restored and committed, but the source's go-ahead never came: held here, not running, until resolved.</summary>
    InDoubt,
}

/// <summary>
/// The target's account: the outcome, the restored process unless nothing was received, and for post-copy the pager
/// that fetches the frames still at the source. <paramref name="ActivatedAt"/>: the <see cref="System.Diagnostics.Stopwatch"/>
/// timestamp at which, the go-ahead received, the process was ready to run here (0 when the go-ahead never came).
/// </summary>
public sealed record TargetResult(TargetOutcome Outcome, RestoredProcess? Process, string? Reason, PostCopyPager? Pager, Guid Id = default, MigrationStage FailedAt = MigrationStage.Completed, long ActivatedAt = 0);

/// <summary>
/// The target side of a live migration: admits or refuses the offer, receives pre-copy rounds straight into the
/// memory the process will run on, restores the image, commits, and waits for the go-ahead. It never runs the
/// process itself: the caller does, after <see cref="TargetOutcome.Activated"/>.
/// </summary>
public static class MigrationTarget
{
    /// <summary>The largest process image (execution and resource segments, no memory frames) a target accepts.</summary>
    public const long MaxImageBytes = 1536L << 20;

    /// <summary>The most functions on the call stack an offer names for the target to translate ahead.</summary>
    public const int MaxFunctionsOnStack = 64;

    /// <param name="restore">Rebuilds the process from its image into the received segments (throwing on a bad one).</param>
    /// <param name="resolveInDoubt">
    /// Asked, by migration id, when the target committed but the go-ahead never came: true if the source recorded the
    /// commitment (the process is the target's), false if it aborted (discard), null if it cannot tell (stay in doubt).
    /// </param>
    /// <param name="stageEntered">
    /// Told as this side enters each stage: Reservation (an offer came), IterativePreCopy (the first round's frames),
    /// StopAndCopy (the first piece of the image: the source has stopped the process), Commitment (the image and the final
    /// frames are in, Committed not yet sent), Activation (the go-ahead came). For progress displays, and for fault injection at a stage.
    /// </param>
    public static async Task<TargetResult> ReceiveAsync(Stream connection, Func<MigrationOffer, Task<Admission>> admit,
        Func<Stream, ReceivedSegments, RestoredProcess> restore, Func<Guid, Task<bool?>>? resolveInDoubt = null,
        MigrationOptions? options = null, Action<MigrationStage>? stageEntered = null, CancellationToken cancel = default)
    {
        using var notReceived = new CancellationTokenSource();
        var result = await ReceiveAsync(connection, admit, restore, resolveInDoubt, options ?? new MigrationOptions(), stageEntered, notReceived.Token, cancel);
        // Nothing will run in the instance the translation ahead works on.
        if (result.Outcome == TargetOutcome.NotReceived) notReceived.Cancel();
        return result;
    }

    private static async Task<TargetResult> ReceiveAsync(Stream connection, Func<MigrationOffer, Task<Admission>> admit,
        Func<Stream, ReceivedSegments, RestoredProcess> restore, Func<Guid, Task<bool?>>? resolveInDoubt,
        MigrationOptions options, Action<MigrationStage>? stageEntered, CancellationToken notReceived, CancellationToken cancel)
    {
        var channel = new MigrationChannel(connection, options.PeerSilence);
        RestoredProcess? restored = null;
        // The restore that runs on another thread while the final frames land (stop-and-copy and pre-copy).
        Task<RestoredProcess>? restoring = null;
        var stage = MigrationStage.Reservation;
        MigrationOffer? offer = null;
        ulong[]? toCome = null;
        long frameCount = 0;
        try
        {
            var payload = (await channel.ExpectAsync(cancel, MigrationFrame.Offer)).Payload.ToArray();
            if (payload.Length < OfferFixedBytes + 4) throw new MigrationProtocolException($"an offer of {payload.Length} bytes");
            var strategy = (MigrationStrategy)payload[52];
            if (!Enum.IsDefined(strategy)) throw new MigrationProtocolException($"unknown strategy {payload[52]}");
            var (directories, listeners, onStack) = ParseResourceNeeds(payload.AsSpan(OfferFixedBytes));
            offer = new MigrationOffer(new Guid(payload.AsSpan(0, 16)), Convert.ToHexStringLower(payload.AsSpan(16, 32)), BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(48)), strategy, directories, listeners, onStack);
            stageEntered?.Invoke(MigrationStage.Reservation);
            var admission = await admit(offer);
            if (admission.Module is not { } module)
            {
                var refusal = admission.Refusal ?? "refused";
                await channel.SendAsync(MigrationFrame.Refuse, Encoding.UTF8.GetBytes(refusal), cancel);
                return new TargetResult(TargetOutcome.NotReceived, null, refusal, null, offer.Id, stage);
            }
            CheckDefined(module, offer.FunctionsOnStack, "the offer");
            var store = new Store();
            LinearMemory? memory = null;
            if (module.Memories.Length > 0)
            {
                memory = store.CreateMemory(module.Memories[0]);
                if (offer.MemoryPages > memory.MaxPages) throw new MigrationProtocolException($"the offer's {offer.MemoryPages} pages exceed the module's maximum of {memory.MaxPages}");
                if (offer.MemoryPages > memory.Pages && memory.Grow(offer.MemoryPages - memory.Pages) < 0)
                {
                    await channel.SendAsync(MigrationFrame.Refuse, Encoding.UTF8.GetBytes($"no room for {offer.MemoryPages} pages of memory"), cancel);
                    return new TargetResult(TargetOutcome.NotReceived, null, "no memory", null, offer.Id, stage);
                }
                // Reservation: the memory is backed now rather than frame by frame inside the downtime.
                memory.CommitFrames();
            }
            // Likewise the instance around it: the image then only fills it in.
            ReceivedSegments segments;
            try
            {
                segments = new ReceivedSegments(module, store, memory, Linker.PrepareForRestore(store, module, memory));
            }
            catch (Exception e) when (e is LinkException or TrapException)
            {
                await channel.SendAsync(MigrationFrame.Refuse, Encoding.UTF8.GetBytes($"the module does not instantiate here: {e.Message}"), cancel);
                return new TargetResult(TargetOutcome.NotReceived, null, e.Message, null, offer.Id, stage);
            }
            if (segments.Instance is { } prepared)
            {
                // Pre-copy's rounds leave time for it beside them. The others stop right after the Admit, and a translation
                // beside their stop took the CPU it needed: they translate before the Admit, while the process still runs.
                if (strategy is MigrationStrategy.PreCopy or MigrationStrategy.Hybrid)
                {
                    _ = TranslateAsync(prepared, offer.FunctionsOnStack, () => notReceived.IsCancellationRequested);
                }
                else
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    await TranslateAsync(prepared, offer.FunctionsOnStack, () => clock.Elapsed >= TranslationBeforeAdmit);
                }
            }
            await channel.SendAsync(MigrationFrame.Admit, ReadOnlyMemory<byte>.Empty, cancel);

            stage = strategy is MigrationStrategy.PreCopy or MigrationStrategy.Hybrid ? MigrationStage.IterativePreCopy : MigrationStage.StopAndCopy;
            var image = new MemoryStream();
            var framesBefore = false;
            // No guest runs on this memory before activation: frames go from the socket straight into it.
            var placement = memory is null ? null : new FrameBatch.Placement(memory);
            void HeaderRead(MigrationFrame type)
            {
                // The final frames follow the complete image: the process is restored while they arrive, not after.
                if (type is MigrationFrame.Frames or MigrationFrame.FrameDeltas && image.Length > 0 && restoring is null && strategy is MigrationStrategy.StopAndCopy or MigrationStrategy.PreCopy)
                    restoring = RestoreAlongside(image, restore, segments);
                if (placement is not null) placement.Growing = restoring is null;
            }
            while (true)
            {
                var (type, piece, placed) = await channel.ExpectAsync(placement, HeaderRead, cancel, MigrationFrame.Frames, MigrationFrame.RoundEnd, MigrationFrame.Image, MigrationFrame.ImageEnd,
                    MigrationFrame.FunctionsOnStack, MigrationFrame.FrameDeltas, MigrationFrame.Abort);
                if (type == MigrationFrame.Abort) return new TargetResult(TargetOutcome.NotReceived, null, $"the source abandoned the migration: {Encoding.UTF8.GetString(piece.Span)}", null, offer.Id, stage);
                if (type == MigrationFrame.ImageEnd)
                {
                    if (strategy is MigrationStrategy.PostCopy or MigrationStrategy.Hybrid) (frameCount, toCome) = FrameSetPayload.Parse(piece.Span, "a post-copy ImageEnd");
                    else if (piece.Length != 0) throw new MigrationProtocolException("an ImageEnd with a bitmap outside post-copy");
                    break;
                }
                if (type == MigrationFrame.Frames)
                {
                    if (memory is null) throw new MigrationProtocolException("memory frames for a module without memory");
                    if (strategy is MigrationStrategy.PostCopy || strategy is MigrationStrategy.Hybrid && image.Length > 0)
                        throw new MigrationProtocolException($"memory frames out of order: {strategy} sends none {(image.Length > 0 ? "after the image" : "before activation")}");
                    if (!framesBefore && stage == MigrationStage.IterativePreCopy) stageEntered?.Invoke(stage);
                    framesBefore = true;
                    if (!placed) FrameBatch.Apply(piece.Span, memory, null, growing: restoring is null);
                }
                if (type == MigrationFrame.FrameDeltas)
                {
                    // Patches to the copies the rounds sent: only pre-copy's stop has them, after the image.
                    if (memory is null) throw new MigrationProtocolException("frame deltas for a module without memory");
                    if (strategy != MigrationStrategy.PreCopy || image.Length == 0)
                        throw new MigrationProtocolException($"frame deltas out of order: {strategy} sends {(strategy == MigrationStrategy.PreCopy ? "them only after the image" : "none")}");
                    FrameDeltaBatch.Apply(piece.Span, memory);
                }
                if (type == MigrationFrame.RoundEnd)
                {
                    if (stage != MigrationStage.IterativePreCopy) throw new MigrationProtocolException($"a RoundEnd out of order: {strategy} in stage {stage} has no pre-copy rounds");
                    if (piece.Length != 4) throw new MigrationProtocolException($"a RoundEnd of {piece.Length} bytes");
                    await channel.SendAsync(MigrationFrame.RoundAck, piece.ToArray(), cancel);
                }
                if (type == MigrationFrame.FunctionsOnStack)
                {
                    if (stage != MigrationStage.IterativePreCopy) throw new MigrationProtocolException($"a FunctionsOnStack message out of order: {strategy} in stage {stage} names no more functions");
                    var functions = ParseFunctionsOnStack(piece.Span, "a FunctionsOnStack message");
                    CheckDefined(module, functions, "a FunctionsOnStack message");
                    if (segments.Instance is { } instance) _ = TranslateAsync(instance, functions, () => notReceived.IsCancellationRequested);
                }
                if (type == MigrationFrame.Image)
                {
                    if (restoring is not null) throw new MigrationProtocolException("a piece of the image after the final frames began");
                    if (image.Length == 0)
                    {
                        stageEntered?.Invoke(MigrationStage.StopAndCopy);
                        // The stop of a converged pre-copy, or of post-copy and hybrid (no frames), lasts milliseconds; stop-and-copy's carries all of memory.
                        if (strategy != MigrationStrategy.StopAndCopy) channel.PollBudget = StopPollBudget;
                    }
                    stage = MigrationStage.StopAndCopy;
                    if (image.Length + piece.Length > MaxImageBytes) throw new MigrationProtocolException($"the process image exceeds {MaxImageBytes} bytes");
                    image.Write(piece.Span);
                }
            }
            channel.PollBudget = TimeSpan.Zero;
            stage = MigrationStage.Commitment;
            stageEntered?.Invoke(stage);
            restored = restoring is null ? Restore(image, restore, segments) : await restoring;
            if (toCome is not null) PrepareAbsentFrames(restored, frameCount, toCome);
            await channel.SendAsync(MigrationFrame.Committed, ReadOnlyMemory<byte>.Empty, cancel);
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException
                                   or SnapshotFormatException or RestoreException)
        {
            restored ??= await AbandonAsync(restoring);
            restored?.Dispose();
            // A peer that broke the protocol, or whose image does not restore here, is told why, if it still listens.
            if (e is MigrationProtocolException or SnapshotFormatException or RestoreException) await channel.TryAbortAsync(e.Message);
            return new TargetResult(TargetOutcome.NotReceived, null, e.Message, null, offer?.Id ?? default, stage);
        }
        try
        {
            var (type, detail) = await channel.ExpectAsync(cancel, MigrationFrame.Activate, MigrationFrame.Abort);
            if (type == MigrationFrame.Abort)
            {
                // The source never saw the commitment (it failed on its way) and keeps the process: this copy goes.
                restored.Dispose();
                return new TargetResult(TargetOutcome.NotReceived, null, $"the source aborted after the commitment was sent: {Encoding.UTF8.GetString(detail.Span)}", null, offer.Id, MigrationStage.Commitment);
            }
            stageEntered?.Invoke(MigrationStage.Activation);
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            var decided = resolveInDoubt is null ? null : await AskAsync(resolveInDoubt, offer.Id);
            if (decided == false)
            {
                restored.Dispose();
                return new TargetResult(TargetOutcome.NotReceived, null, $"the go-ahead never came and the source recorded an abort: {e.Message}", null, offer.Id, MigrationStage.Activation);
            }
            // A go-ahead that failed its checksum left the connection framed: post-copy's push can still come over it.
            var connectionHolds = e is MigrationChecksumException { Type: MigrationFrame.Activate };
            if (decided != true || toCome is not null && !connectionHolds)
            {
                // Post-copy cannot run without its source's memory even when the commitment is confirmed.
                return new TargetResult(TargetOutcome.InDoubt, restored, $"committed, but the go-ahead never came: {e.Message}", null, offer.Id, MigrationStage.Activation);
            }
            if (toCome is null) return new TargetResult(TargetOutcome.Activated, restored, $"the go-ahead never came; the source confirmed the commitment: {e.Message}", null, offer.Id);
            stageEntered?.Invoke(MigrationStage.Activation);
        }
        PostCopyPager? pager = null;
        if (toCome is not null)
        {
            try
            {
                await channel.SendAsync(MigrationFrame.Resumed, ReadOnlyMemory<byte>.Empty, cancel);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                // Activated without its source: the pager reports the process lost at its first absent frame, as after any later failure.
            }
            pager = PostCopyPager.Start(channel, restored.Instance.Memory!, frameCount, toCome, options.FetchTimeout);
        }
        return new TargetResult(TargetOutcome.Activated, restored, null, pager, offer.Id, ActivatedAt: System.Diagnostics.Stopwatch.GetTimestamp());
    }

    /// <summary>Rebuilds the process from the complete image into the segments received so far (throwing on a bad image).</summary>
    private static RestoredProcess Restore(MemoryStream image, Func<Stream, ReceivedSegments, RestoredProcess> restore, ReceivedSegments segments)
    {
        image.Position = 0;
        return restore(image, segments);
    }

    /// <summary>
    /// Starts restoring the complete image on another thread, so that the checks, the resource rebinding and the
    /// translation of the running function overlap the final frames' transfer. The memory takes the image's size
    /// first, here, since no frame may land in it while it grows; the restore then finds it that size and leaves it.
    /// </summary>
    private static Task<RestoredProcess> RestoreAlongside(MemoryStream image, Func<Stream, ReceivedSegments, RestoredProcess> restore, ReceivedSegments segments)
    {
        var memory = segments.Memory;
        if (memory is not null)
        {
            image.Position = 0;
            var pages = new SnapshotReader(image).ReadHeader().MemoryPages;
            if (pages > memory.MaxPages) throw new SnapshotFormatException($"the image's {pages} pages exceed the module's maximum of {memory.MaxPages}");
            if (pages > memory.Pages && memory.Grow(pages - memory.Pages) < 0) throw new SnapshotFormatException($"memory cannot grow to the image's {pages} pages");
        }
        return Task.Run(() => Restore(image, restore, segments));
    }

    /// <summary>Waits for a restore that a failed migration no longer needs; returns what it restored, for disposal, or null if it failed too.</summary>
    private static async Task<RestoredProcess?> AbandonAsync(Task<RestoredProcess>? restoring)
    {
        if (restoring is null) return null;
        try
        {
            return await restoring;
        }
        catch (Exception)
        {
            // The migration already failed for the reason being reported; how its restore ended adds nothing.
            return null;
        }
    }

    /// <summary>
    /// Translates <paramref name="functions"/> of the instance the process will be restored into, innermost first, on a
    /// thread of its own, until <paramref name="enough"/> says so. The restore translates the function the process stopped
    /// in, and each caller is translated when returned to: inside the downtime, or as a stall just after it, for as long as
    /// a large function takes (CPython's interpreter loop, 106 KB of code: 15-50 ms). A restore that needs a function being
    /// translated here waits for that translation rather than starting its own.
    /// </summary>
    private static Task TranslateAsync(Instance instance, IReadOnlyList<uint> functions, Func<bool> enough) =>
        functions.Count == 0 ? Task.CompletedTask : Task.Factory.StartNew(() =>
        {
            try
            {
                foreach (var index in functions)
                {
                    if (enough()) return;
                    ((WasmFunction)instance.Function(index)).Translate();
                }
            }
            catch (Exception)
            {
                // Only ahead of time: a function that fails to translate fails again, and is reported, where the restore or a call needs it.
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// How long in all a target may poll for the stop's image and final frames rather than wait for them (see
    /// MigrationChannel.PollBudget): a stop that runs longer than a converged one costs a core only that long.
    /// </summary>
    private static readonly TimeSpan StopPollBudget = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a stop-and-copy or post-copy target may translate before its Admit: the migration's total time grows by it.</summary>
    private static readonly TimeSpan TranslationBeforeAdmit = TimeSpan.FromMilliseconds(250);

    /// <summary>Migration id, module hash, memory pages and strategy: the offer's part before the resources it needs.</summary>
    internal const int OfferFixedBytes = 16 + 32 + 4 + 1;

    /// <summary>
    /// The offer's resource needs: u16 directory count, each a u16 length and UTF-8 host path, then u16 listener count;
    /// then, unless the offer ends there, the functions on the call stack: u16 count and a u32 function index each.
    /// </summary>
    private static (List<string> Directories, int Listeners, uint[] FunctionsOnStack) ParseResourceNeeds(ReadOnlySpan<byte> needs)
    {
        var directories = new List<string>();
        var count = BinaryPrimitives.ReadUInt16LittleEndian(needs);
        var at = 2;
        for (var i = 0; i < count; i++)
        {
            if (needs.Length < at + 2) throw new MigrationProtocolException("an offer cut short in its directories");
            var length = BinaryPrimitives.ReadUInt16LittleEndian(needs[at..]);
            if (needs.Length < at + 2 + length) throw new MigrationProtocolException("an offer cut short in its directories");
            directories.Add(Encoding.UTF8.GetString(needs.Slice(at + 2, length)));
            at += 2 + length;
        }
        if (needs.Length < at + 2) throw new MigrationProtocolException("an offer cut short before its listener count");
        var listeners = BinaryPrimitives.ReadUInt16LittleEndian(needs[at..]);
        at += 2;
        if (needs.Length == at) return (directories, listeners, []);
        return (directories, listeners, ParseFunctionsOnStack(needs[at..], "an offer"));
    }

    /// <summary>Functions on a call stack, as an offer or a FunctionsOnStack message lists them: u16 count, then a u32 function index each.</summary>
    private static uint[] ParseFunctionsOnStack(ReadOnlySpan<byte> list, string what)
    {
        if (list.Length < 2) throw new MigrationProtocolException($"{what} cut short in its functions on the call stack");
        var functions = BinaryPrimitives.ReadUInt16LittleEndian(list);
        if (functions > MaxFunctionsOnStack) throw new MigrationProtocolException($"{what} naming {functions} functions on the call stack, more than {MaxFunctionsOnStack}");
        if (list.Length != 2 + 4 * functions) throw new MigrationProtocolException($"{what} whose {functions} functions on the call stack take {list.Length - 2} bytes, not {4 * functions}");
        var onStack = new uint[functions];
        for (var i = 0; i < onStack.Length; i++) onStack[i] = BinaryPrimitives.ReadUInt32LittleEndian(list[(2 + 4 * i)..]);
        return onStack;
    }

    private static void CheckDefined(Module module, IReadOnlyList<uint> functions, string what)
    {
        foreach (var index in functions)
        {
            if (index < module.ImportedFunctionCount || index >= module.FunctionCount)
                throw new MigrationProtocolException($"{what} names function {index} on the process's call stack, which the module does not define");
        }
    }

    private static async Task<bool?> AskAsync(Func<Guid, Task<bool?>> resolve, Guid id)
    {
        try
        {
            return await resolve(id).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is IOException or TimeoutException or HttpRequestException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Post-copy: every frame still at the source is absent, every other one present; presence tracking on.</summary>
    private static void PrepareAbsentFrames(RestoredProcess restored, long frameCount, ulong[] toCome)
    {
        var memory = restored.Instance.Memory;
        if (memory is null)
        {
            if (frameCount != 0) throw new MigrationProtocolException("a post-copy bitmap for a process without memory");
            return;
        }
        if (frameCount != memory.FrameCount) throw new MigrationProtocolException($"the post-copy bitmap covers {frameCount} frames, the memory has {memory.FrameCount}");
        memory.Present.SetAll(memory.FrameCount);
        memory.Present.ClearWhere(toCome);
        memory.PresenceTracking = true;
    }
}
