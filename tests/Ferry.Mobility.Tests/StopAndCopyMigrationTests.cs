using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Engine;
using Ferry.Mobility.Migration;
using Ferry.Tests.Shared;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Mobility.Tests;

/// <summary>Stop-and-copy migration over TCP on 127.0.0.1: equivalence, and no loss or double run when it fails.</summary>
public sealed class StopAndCopyMigrationTests
{
    private static readonly string[] Arguments = ["dirtier", "--mib", "2", "--iterations", "60", "--writes-per-iteration", "2000", "--report", "10"];
    private static readonly byte[] ModuleBytes = File.ReadAllBytes(Guests.Wasm("dirtier"));

    private sealed record Source(Module Module, Instance Instance, Execution Execution, WasiProcess Wasi);

    private static Source Start(Stream stdout)
    {
        var module = Module.Load(ModuleBytes);
        var wasi = new WasiProcess(new WasiConfiguration { Arguments = [.. Arguments], Stdout = stdout });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, module);
        return new Source(module, instance, store.Start(instance.GetFunction("_start")), wasi);
    }

    private static string Uninterrupted()
    {
        var console = new MemoryStream();
        var source = Start(console);
        source.Execution.Run();
        return Encoding.UTF8.GetString(console.ToArray());
    }

    private static async Task<(NetworkStream Client, NetworkStream Server, IDisposable Connection)> Connect()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient();
        var accepting = listener.AcceptTcpClientAsync();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var server = await accepting;
        listener.Stop();
        return (client.GetStream(), server.GetStream(), new Both(client, server));
    }

    private sealed class Both(TcpClient a, TcpClient b) : IDisposable
    {
        public void Dispose()
        {
            a.Dispose();
            b.Dispose();
        }
    }

    private static RestoredProcess Restore(Stream image, Stream console) =>
        ProcessSnapshot.Restore(image, Stream.Null, console, Stream.Null, _ => ModuleBytes);

    [Fact]
    public async Task A_process_migrated_mid_run_finishes_on_the_target_with_the_uninterrupted_output()
    {
        var console = new MemoryStream();
        var source = Start(console);
        Assert.Equal(ExecutionStatus.OutOfFuel, source.Execution.Run(3_000_000));
        var (client, server, connection) = await Connect();
        using (connection)
        {
            var target = StopAndCopyMigration.ReceiveAsync(server, _ => null, image => Restore(image, console));
            var report = await StopAndCopyMigration.SendAsync(client, source.Module, source.Instance, source.Execution, source.Wasi);
            source.Wasi.Dispose();
            var result = await target;
            Assert.Equal(TargetOutcome.Activated, result.Outcome);
            Assert.True(report.ImageBytes > 0 && report.Downtime <= report.Total);
            using var moved = result.Process!;
            Assert.Equal(ExecutionStatus.Finished, moved.Execution.Run());
        }
        Assert.Equal(Uninterrupted(), Encoding.UTF8.GetString(console.ToArray()));
    }

    [Fact]
    public async Task A_refused_migration_leaves_the_process_running_on_the_source()
    {
        var console = new MemoryStream();
        var source = Start(console);
        source.Execution.Run(3_000_000);
        var (client, server, connection) = await Connect();
        using (connection)
        {
            var target = StopAndCopyMigration.ReceiveAsync(server, _ => "no room for it here", image => Restore(image, Stream.Null));
            var failure = await Assert.ThrowsAsync<MigrationAbortedException>(() => StopAndCopyMigration.SendAsync(client, source.Module, source.Instance, source.Execution, source.Wasi));
            Assert.Contains("no room for it here", failure.Message);
            Assert.Equal(TargetOutcome.NotReceived, (await target).Outcome);
        }
        Assert.Equal(ExecutionStatus.Finished, source.Execution.Run());
        Assert.Equal(Uninterrupted(), Encoding.UTF8.GetString(console.ToArray()));
    }

    [Fact]
    public async Task A_connection_cut_during_the_image_aborts_and_the_source_finishes_the_process()
    {
        var console = new MemoryStream();
        var source = Start(console);
        source.Execution.Run(3_000_000);
        var (client, server, connection) = await Connect();
        var peer = Task.Run(async () =>
        {
            var channel = new MigrationChannel(server);
            await channel.ExpectAsync(default, MigrationFrame.Offer);
            await channel.SendAsync(MigrationFrame.Admit, ReadOnlyMemory<byte>.Empty);
            await channel.ExpectAsync(default, MigrationFrame.Image);
            connection.Dispose();
        });
        await Assert.ThrowsAsync<MigrationAbortedException>(() => StopAndCopyMigration.SendAsync(client, source.Module, source.Instance, source.Execution, source.Wasi));
        await peer;
        Assert.Equal(ExecutionStatus.Finished, source.Execution.Run());
        Assert.Equal(Uninterrupted(), Encoding.UTF8.GetString(console.ToArray()));
    }

    /// <summary>A target facing a misbehaving source: what the source sends, and what the target concludes.</summary>
    private static async Task<TargetResult> AgainstPeer(Func<MigrationChannel, Stream, Task> peer, Func<MigrationOffer, string?>? admit = null)
    {
        var (client, server, connection) = await Connect();
        using (connection)
        {
            var target = StopAndCopyMigration.ReceiveAsync(server, admit ?? (_ => null), image => Restore(image, Stream.Null));
            try
            {
                await peer(new MigrationChannel(client), client);
            }
            catch (IOException)
            {
                // The target may close first; what it concluded is what the test checks.
            }
            // The peer stops sending (FIN), so the target reads everything sent and then sees the end.
            client.Socket.Shutdown(SocketShutdown.Send);
            return await target;
        }
    }

    private static byte[] Offer(Guid id)
    {
        var offer = new byte[52];
        id.TryWriteBytes(offer);
        Convert.FromHexString(Module.Load(ModuleBytes).Hash).CopyTo(offer, 16);
        return offer;
    }

    [Fact]
    public async Task A_target_refuses_wrong_order_unknown_frames_oversized_lengths_and_corrupt_frames()
    {
        var wrongOrder = await AgainstPeer((channel, _) => channel.SendAsync(MigrationFrame.Image, new byte[10]));
        Assert.Equal(TargetOutcome.NotReceived, wrongOrder.Outcome);
        Assert.Contains("expected Offer", wrongOrder.Reason);

        var unknown = await AgainstPeer((_, raw) => raw.WriteAsync(new byte[] { 99, 0, 0, 0, 0, 0, 0, 0, 0 }).AsTask());
        Assert.Contains("unknown frame type 99", unknown.Reason);

        var oversized = await AgainstPeer((_, raw) => raw.WriteAsync(new byte[] { 1, 0xFF, 0xFF, 0xFF, 0x7F }).AsTask());
        Assert.Contains("exceeds the limit", oversized.Reason);

        var corrupt = await AgainstPeer(async (_, raw) =>
        {
            var frame = new MemoryStream();
            await new MigrationChannel(frame).SendAsync(MigrationFrame.Offer, Offer(Guid.NewGuid()));
            var bytes = frame.ToArray();
            bytes[20] ^= 0x40;
            await raw.WriteAsync(bytes);
        });
        Assert.Contains("fails its checksum", corrupt.Reason);
    }

    [Fact]
    public async Task A_replayed_migration_id_is_refused()
    {
        var seen = new HashSet<Guid>();
        string? Admit(MigrationOffer offer) => seen.Add(offer.Id) ? null : $"replayed migration id {offer.Id}";
        var id = Guid.NewGuid();
        async Task OfferTwice(MigrationChannel channel, Stream _)
        {
            await channel.SendAsync(MigrationFrame.Offer, Offer(id));
            await channel.ExpectAsync(default, MigrationFrame.Admit, MigrationFrame.Refuse);
        }
        Assert.Equal(TargetOutcome.NotReceived, (await AgainstPeer(OfferTwice, Admit)).Outcome);
        var replay = await AgainstPeer(OfferTwice, Admit);
        Assert.Equal(TargetOutcome.NotReceived, replay.Outcome);
        Assert.Contains("replayed migration id", replay.Reason);
    }

    [Fact]
    public async Task A_target_that_committed_but_never_got_the_go_ahead_holds_the_process_without_running_it()
    {
        var source = Start(Stream.Null);
        source.Execution.Run(3_000_000);
        var image = new MemoryStream();
        ProcessSnapshot.Capture(image, source.Module, source.Instance, source.Execution, source.Wasi);
        var result = await AgainstPeer(async (channel, _) =>
        {
            await channel.SendAsync(MigrationFrame.Offer, Offer(Guid.NewGuid()));
            await channel.ExpectAsync(default, MigrationFrame.Admit);
            await channel.SendAsync(MigrationFrame.Image, image.ToArray());
            await channel.SendAsync(MigrationFrame.ImageEnd, ReadOnlyMemory<byte>.Empty);
            await channel.ExpectAsync(default, MigrationFrame.Committed);
        });
        Assert.Equal(TargetOutcome.InDoubt, result.Outcome);
        using var held = result.Process!;
        Assert.Equal(ExecutionStatus.Paused, held.Execution.Status);
        Assert.Equal(3_000_000, held.Execution.InstructionsExecuted);
    }
}
