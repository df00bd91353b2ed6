using System.Net;
using System.Net.Sockets;
using Ferry.Engine;
using Ferry.Mobility.Migration;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Mobility.Hosting;

/// <summary>
/// Moves a tiny running process from this host to itself over loopback TCP, once per strategy, so that both sides of a
/// migration are compiled before a real one stops a process: a node's first migration in each role otherwise spent
/// 40-180 ms of its downtime in the JIT (measured between two `ferry node` processes, 8 MiB pre-copy: 73 and 37 ms
/// for the first two, 1.4-5 ms for most later ones).
/// </summary>
public static class MigrationWarmUp
{
    // (module (memory 64) (func (export "_start") (local $i i32)
    //   (loop (i32.store (i32.and (i32.mul (local.get $i) (i32.const 4096)) (i32.const 0x3FFFFF)) (local.get $i))
    //         (local.set $i (i32.add (local.get $i) (i32.const 1))) (br 0))))
    // It writes every frame of its 4 MiB over and over, so each strategy's loops run over a thousand frames.
    private static readonly byte[] Writer =
    [
        0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00,
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
        0x03, 0x02, 0x01, 0x00,
        0x05, 0x03, 0x01, 0x00, 0x40,
        0x07, 0x0A, 0x01, 0x06, 0x5F, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x00,
        0x0A, 0x23, 0x01, 0x21, 0x01, 0x01, 0x7F, 0x03, 0x40, 0x20, 0x00, 0x41, 0x80, 0x20, 0x6C, 0x41, 0xFF, 0xFF, 0xFF, 0x01, 0x71,
        0x20, 0x00, 0x36, 0x02, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6A, 0x21, 0x00, 0x0C, 0x00, 0x0B, 0x0B,
    ];

    /// <summary>One migration per strategy; returns how many completed.</summary>
    public static async Task<int> RunAsync(CancellationToken cancel = default)
    {
        var done = 0;
        foreach (var strategy in Enum.GetValues<MigrationStrategy>())
        {
            await MigrateOnceAsync(strategy, cancel);
            done++;
        }
        return done;
    }

    private static async Task MigrateOnceAsync(MigrationStrategy strategy, CancellationToken cancel)
    {
        var module = Module.Load(Writer);
        using var wasi = new WasiProcess(new WasiConfiguration { Arguments = ["warm-up"], SuspendInsteadOfBlocking = true });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, module);
        var source = new SlicedProcess(module, instance, store.Start(instance.GetFunction("_start")), wasi, sliceFuel: 100_000);
        source.Start();
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            using var client = new TcpClient { NoDelay = true };
            var accepting = listener.AcceptTcpClientAsync(cancel).AsTask();
            await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port, cancel);
            using var server = await accepting;
            server.NoDelay = true;
            var target = Task.Run(() => MigrationTarget.ReceiveAsync(server.GetStream(), _ => Task.FromResult(Admission.Admit(module)),
                (image, received) => ProcessSnapshot.Restore(image, Stream.Null, Stream.Null, Stream.Null, _ => Writer, suspendInsteadOfBlocking: true, received),
                cancel: cancel), cancel);
            await MigrationSource.MigrateAsync(client.GetStream(), source, new MigrationOptions { Strategy = strategy }, cancel: cancel, abandon: cancel);
            var result = await target;
            if (result.Pager is { } pager) await pager.Completion;
            result.Process?.Dispose();
        }
        finally
        {
            listener.Stop();
            // Whatever happened (a cancelled warm-up aborts, and an aborted source runs on), its loop must not outlive it.
            source.GiveUp(Guid.Empty);
            await source.Completion;
        }
    }
}
