using System.Runtime.CompilerServices;
using Ferry.Engine;
using Ferry.Node.Processes;
using Ferry.Tests.Shared;
using Ferry.Wasi;

namespace Ferry.Node.Tests;

/// <summary>
/// A node keeps a record of every process it ran (for `ps` and `logs`), but an ended process gives back its memory and
/// execution segment, unless a migration still reads them.
/// </summary>
public sealed class ProcessReleaseTests : IDisposable
{
    private readonly Scheduler _scheduler = new(workers: 1, sliceFuel: 100_000);
    private bool _stopped;

    public void Dispose() => StopScheduler();

    /// <summary>
    /// Stops the worker: until it runs another slice, its stack may still hold the last execution it ran, which is not
    /// the node's record keeping it (it is overwritten at the worker's next slice).
    /// </summary>
    private void StopScheduler()
    {
        if (!_stopped) _scheduler.Dispose();
        _stopped = true;
    }

    /// <summary>The dirtier guest as the node starts a submitted process, and a weak reference to its memory.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (HostedProcess Process, WeakReference Memory) Launch()
    {
        var module = Ferry.Wasm.Module.Load(File.ReadAllBytes(Guests.Wasm("dirtier")));
        var output = new OutputLog(1 << 20);
        string[] arguments = ["--mib", "8", "--iterations", "20", "--writes-per-iteration", "100"];
        var wasi = new WasiProcess(new WasiConfiguration { Arguments = ["dirtier", .. arguments], Stdout = output.Writer(1), Stderr = output.Writer(2), SuspendInsteadOfBlocking = true });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, module);
        Assert.True(instance.TryGetExport("_start", out var start));
        var process = new HostedProcess("a-1", module, instance, arguments, store.Start(start.AsFunction!), wasi, output);
        return (process, new WeakReference(instance.Memory));
    }

    /// <summary>
    /// Runs the process until it has ended, then stops the worker: the state reads Finished before the worker has closed
    /// the log and given back the memory, and joining the worker waits for both.
    /// </summary>
    private void RunToTheEnd(HostedProcess process)
    {
        _scheduler.Enqueue(process);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!process.Ended && DateTime.UtcNow < deadline) Thread.Sleep(10);
        StopScheduler();
        Assert.Equal(ProcessState.Finished, process.State);
    }

    private static bool Collected(WeakReference reference)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return !reference.IsAlive;
    }

    [Fact]
    public void A_finished_process_keeps_its_record_and_gives_back_its_memory()
    {
        var (process, memory) = Launch();
        RunToTheEnd(process);
        Assert.Equal(0, process.ExitCode);
        Assert.True(process.InstructionsExecuted > 1_000_000, $"{process.InstructionsExecuted} instructions");
        var (chunks, closed) = process.Output.Read(0, 0, TimeSpan.Zero);
        Assert.True(closed);
        Assert.Contains("dirtier: 8 MiB, 20 iterations", System.Text.Encoding.UTF8.GetString(chunks.Where(c => c.Stream == 1).SelectMany(c => c.Data).ToArray()));
        Assert.Throws<InvalidOperationException>(() => process.Instance);
        Assert.True(Collected(memory), "the ended process's memory is still reachable");
    }

    [Fact]
    public void A_process_that_ends_during_its_migration_keeps_its_memory_until_the_migration_is_over()
    {
        var (process, memory) = Launch();
        Assert.True(process.TryBeginMigration());
        Assert.False(process.TryBeginMigration(), "a second migration claimed the process");
        RunToTheEnd(process);
        Assert.NotNull(process.Instance.Memory);
        Assert.False(Collected(memory));
        process.EndMigration();
        Assert.Throws<InvalidOperationException>(() => process.Instance);
        Assert.True(Collected(memory), "the memory outlived the migration");
        Assert.False(process.TryBeginMigration(), "an ended process was claimed for a migration");
    }
}
