using System.Buffers.Binary;
using System.Diagnostics;
using Ferry.Engine;
using Ferry.Mobility.Snapshots;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Mobility.Migration;

/// <summary>What the source offers in stage 2 (reservation).</summary>
public sealed record MigrationOffer(Guid Id, string ModuleHash, uint MemoryPages);

/// <summary>The source's account of a migration that committed.</summary>
public sealed record MigrationReport(Guid Id, TimeSpan Total, TimeSpan Downtime, long BytesSent, long ImageBytes);

/// <summary>The migration did not commit: the source still owns the process and should resume it.</summary>
public sealed class MigrationAbortedException(string message, Exception? inner = null) : Exception(message, inner);

public enum TargetOutcome
{
    /// <summary>The process is restored here and may run (stage 6, activation).</summary>
    Activated,
    /// <summary>Refused at reservation, or abandoned before commitment: nothing is kept here.</summary>
    NotReceived,
    /// <summary>Restored and committed, but the source's go-ahead never came: held here, not running, until resolved.</summary>
    InDoubt,
}

/// <summary>The target's account: the outcome and, unless nothing was received, the restored process.</summary>
public sealed record TargetResult(TargetOutcome Outcome, RestoredProcess? Process, string? Reason);

/// <summary>
/// Stop-and-copy migration of a whole WASI process over any duplex stream, as a transaction in the stages of
/// DESIGN.md: reservation (offer, admit or refuse), stop-and-copy (the process image as checksummed frames),
/// commitment (the target restored and checked it; only then does the source give up its copy) and activation
/// (the source's go-ahead). Before commitment any failure leaves the process with the source; a target that
/// committed but never hears the go-ahead holds the process without running it, so it never runs twice.
/// </summary>
public static class StopAndCopyMigration
{
    private const int ImageChunk = 1 << 20;

    /// <summary>
    /// Source side. The process must not be running (call between slices). Returns once the target has committed;
    /// throws <see cref="MigrationAbortedException"/> if it did not, and the caller keeps running the process.
    /// </summary>
    public static async Task<MigrationReport> SendAsync(Stream connection, Module module, Instance instance, Execution execution, WasiProcess wasi, CancellationToken cancel = default)
    {
        var channel = new MigrationChannel(connection);
        var id = Guid.NewGuid();
        var total = Stopwatch.StartNew();
        long sent = 0;
        try
        {
            var offer = new byte[16 + 32 + 4];
            id.TryWriteBytes(offer);
            Convert.FromHexString(module.Hash).CopyTo(offer, 16);
            BinaryPrimitives.WriteUInt32LittleEndian(offer.AsSpan(48), instance.Memory?.Pages ?? 0);
            await channel.SendAsync(MigrationFrame.Offer, offer, cancel);
            sent += offer.Length;
            var (answer, reason) = await channel.ExpectAsync(cancel, MigrationFrame.Admit, MigrationFrame.Refuse);
            if (answer == MigrationFrame.Refuse) throw new MigrationAbortedException($"the target refused the process: {System.Text.Encoding.UTF8.GetString(reason)}");

            var downtime = Stopwatch.StartNew();
            var image = new MemoryStream();
            ProcessSnapshot.Capture(image, module, instance, execution, wasi);
            var bytes = image.GetBuffer().AsMemory(0, (int)image.Length);
            for (var at = 0; at < bytes.Length; at += ImageChunk)
            {
                var piece = bytes.Slice(at, Math.Min(ImageChunk, bytes.Length - at));
                await channel.SendAsync(MigrationFrame.Image, piece, cancel);
                sent += piece.Length;
            }
            await channel.SendAsync(MigrationFrame.ImageEnd, ReadOnlyMemory<byte>.Empty, cancel);
            var (verdict, detail) = await channel.ExpectAsync(cancel, MigrationFrame.Committed, MigrationFrame.Abort);
            if (verdict == MigrationFrame.Abort) throw new MigrationAbortedException($"the target abandoned the migration: {System.Text.Encoding.UTF8.GetString(detail)}");
            downtime.Stop();
            await channel.SendAsync(MigrationFrame.Activate, ReadOnlyMemory<byte>.Empty, cancel);
            return new MigrationReport(id, total.Elapsed, downtime.Elapsed, sent, bytes.Length);
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            throw new MigrationAbortedException($"the migration failed before commitment: {e.Message}", e);
        }
    }

    /// <summary>
    /// Target side. <paramref name="admit"/> returns null to admit an offer or the reason to refuse it;
    /// <paramref name="restore"/> rebuilds the process from its image (throwing on a bad one).
    /// </summary>
    public static async Task<TargetResult> ReceiveAsync(Stream connection, Func<MigrationOffer, string?> admit, Func<Stream, RestoredProcess> restore, CancellationToken cancel = default)
    {
        var channel = new MigrationChannel(connection);
        RestoredProcess? restored = null;
        try
        {
            var (_, payload) = await channel.ExpectAsync(cancel, MigrationFrame.Offer);
            if (payload.Length != 52) throw new MigrationProtocolException($"an offer of {payload.Length} bytes");
            var offer = new MigrationOffer(new Guid(payload.AsSpan(0, 16)), Convert.ToHexStringLower(payload.AsSpan(16, 32)), BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(48)));
            if (admit(offer) is { } refusal)
            {
                await channel.SendAsync(MigrationFrame.Refuse, System.Text.Encoding.UTF8.GetBytes(refusal), cancel);
                return new TargetResult(TargetOutcome.NotReceived, null, refusal);
            }
            await channel.SendAsync(MigrationFrame.Admit, ReadOnlyMemory<byte>.Empty, cancel);

            var image = new MemoryStream();
            while (true)
            {
                var (type, piece) = await channel.ExpectAsync(cancel, MigrationFrame.Image, MigrationFrame.ImageEnd, MigrationFrame.Abort);
                if (type == MigrationFrame.ImageEnd) break;
                if (type == MigrationFrame.Abort) return new TargetResult(TargetOutcome.NotReceived, null, "the source abandoned the migration");
                image.Write(piece);
            }
            image.Position = 0;
            try
            {
                restored = restore(image);
            }
            catch (Exception e) when (e is SnapshotFormatException or RestoreException)
            {
                await channel.SendAsync(MigrationFrame.Abort, System.Text.Encoding.UTF8.GetBytes(e.Message), cancel);
                return new TargetResult(TargetOutcome.NotReceived, null, e.Message);
            }
            await channel.SendAsync(MigrationFrame.Committed, ReadOnlyMemory<byte>.Empty, cancel);
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            restored?.Dispose();
            return new TargetResult(TargetOutcome.NotReceived, null, e.Message);
        }
        try
        {
            await channel.ExpectAsync(cancel, MigrationFrame.Activate);
            return new TargetResult(TargetOutcome.Activated, restored, null);
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            return new TargetResult(TargetOutcome.InDoubt, restored, $"committed, but the go-ahead never came: {e.Message}");
        }
    }
}
