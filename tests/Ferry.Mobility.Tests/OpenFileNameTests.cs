using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Engine;
using Ferry.Mobility.Hosting;
using Ferry.Mobility.Migration;
using Ferry.Tests.Shared;
using Ferry.Wasi;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;

namespace Ferry.Mobility.Tests;

/// <summary>
/// A snapshot reopens a process's open files by path: a file the guest renamed while open is found at its new name, and
/// a file whose name is gone (unlinked, or replaced by another file: SQLite's temporary files are opened, then unlinked
/// at once) is carried by value, its contents copied, rather than resumed on nothing or on someone else's file.
/// </summary>
public sealed class OpenFileNameTests
{
    private const long StopInTheLoop = 10_000_000;

    private static (Guests.Result Run, string Snapshot) RunAndStop(string mode)
    {
        var directory = TemporaryDirectories.Create("ferry-open-file-");
        var snapshot = Path.Combine(directory, "stopped.snap");
        var data = Directory.CreateDirectory(Path.Combine(directory, "data")).FullName;
        var run = Guests.Ferry(["run", "--dir", $"{data}::.", "--pause-after-instructions", StopInTheLoop.ToString(), "--snapshot", snapshot, Guests.Wasm("open_renamed"), mode]);
        return (run, snapshot);
    }

    [Fact]
    public void A_file_renamed_while_open_is_reopened_at_its_new_name_and_the_output_equals_the_native_run()
    {
        var native = Guests.NativeRun("open_renamed", ["rename"], workingDirectory: TemporaryDirectories.Create("ferry-open-file-native-"));
        var (run, snapshot) = RunAndStop("rename");
        Assert.Equal(85, run.ExitCode);
        var resumed = Guests.Ferry(["resume", snapshot]);
        Assert.Equal(0, resumed.ExitCode);
        Assert.Equal(Encoding.UTF8.GetString(native.Stdout), Encoding.UTF8.GetString([.. run.Stdout, .. resumed.Stdout]));
    }

    [Theory]
    [InlineData("unlink")]
    [InlineData("replace")]
    public void A_file_whose_name_is_gone_is_carried_by_value_and_the_output_equals_the_native_run(string mode)
    {
        var native = Guests.NativeRun("open_renamed", [mode], workingDirectory: TemporaryDirectories.Create("ferry-open-file-native-"));
        var (run, snapshot) = RunAndStop(mode);
        Assert.Equal(85, run.ExitCode);
        var inspected = Guests.Ferry(["snapshot", "inspect", snapshot]);
        Assert.Contains("File           by ByValue, Unattached  a copy of 36 bytes", Encoding.UTF8.GetString(inspected.Stdout));
        var resumed = Guests.Ferry(["resume", snapshot]);
        Assert.Equal(0, resumed.ExitCode);
        Assert.Equal(Encoding.UTF8.GetString(native.Stdout), Encoding.UTF8.GetString([.. run.Stdout, .. resumed.Stdout]));
        // The copy has no name: the directory holds what the native run leaves (for replace, the other file, untouched).
        var data = Path.Combine(Path.GetDirectoryName(snapshot)!, "data");
        Assert.Equal(mode == "replace" ? ["scratch.tmp"] : [], Directory.GetFiles(data).Select(f => Path.GetFileName(f)));
        if (mode == "replace") Assert.Equal("another file\n", File.ReadAllText(Path.Combine(data, "scratch.tmp")));
    }

    [Fact]
    public void Two_descriptors_on_a_file_whose_name_is_gone_refuse_the_capture_with_the_reason()
    {
        var (run, snapshot) = RunAndStop("twice");
        Assert.Equal(125, run.ExitCode);
        Assert.Contains("they may be one file, which two copies would split", run.Stderr);
        Assert.False(File.Exists(snapshot));
    }

    /// <summary>open_renamed in <paramref name="mode"/>, run past its opens and unlink into its loop, then held on a sliced host.</summary>
    private static (SlicedProcess Source, Module Module, MemoryStream Console, string Native) StartHeld(string mode)
    {
        var data = TemporaryDirectories.Create("ferry-open-file-");
        var native = Guests.NativeRun("open_renamed", [mode], workingDirectory: TemporaryDirectories.Create("ferry-open-file-native-"));
        var module = Module.Load(File.ReadAllBytes(Guests.Wasm("open_renamed")));
        var console = new MemoryStream();
        var wasi = new WasiProcess(new WasiConfiguration { Arguments = ["open_renamed", mode], Stdout = console, Preopens = [new Preopen(data, ".")] });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, module);
        var execution = store.Start(instance.GetFunction("_start"));
        // A million instructions take it past the opens and the unlink into its loop; held there, the migration surely finds it so.
        Assert.Equal(ExecutionStatus.OutOfFuel, execution.Run(fuel: 1_000_000));
        var source = new SlicedProcess(module, instance, execution, wasi, sliceFuel: 100_000);
        source.Start();
        source.AtSafepointAsync(() =>
        {
            source.Hold();
            return 0;
        }, CancellationToken.None).GetAwaiter().GetResult();
        return (source, module, console, Encoding.UTF8.GetString(native.Stdout));
    }

    /// <summary>A stop-and-copy migration of <paramref name="source"/> over loopback TCP to a target that restores with <paramref name="restore"/>.</summary>
    private static async Task<(Task<MigrationReport> Migration, TargetResult Target)> Migrate(SlicedProcess source, Module module, Func<Stream, ReceivedSegments, RestoredProcess> restore)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var target = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            return await MigrationTarget.ReceiveAsync(client.GetStream(), _ => Task.FromResult(Admission.Admit(module)), restore);
        });
        var connection = new TcpClient();
        await connection.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var migration = MigrationSource.MigrateAsync(connection.GetStream(), source, new MigrationOptions { Strategy = MigrationStrategy.StopAndCopy });
        var result = await target;
        listener.Stop();
        _ = migration.ContinueWith(_ => connection.Dispose(), TaskScheduler.Default);
        return (migration, result);
    }

    [Fact]
    public async Task A_migration_carries_a_file_whose_name_is_gone_and_the_moved_process_reads_it_back_as_the_native_run_does()
    {
        var (source, module, console, native) = StartHeld("unlink");
        var moved = new MemoryStream();
        var (migration, target) = await Migrate(source, module,
            (image, received) => ProcessSnapshot.Restore(image, Stream.Null, moved, Stream.Null, _ => null, suspendInsteadOfBlocking: true, received));
        await migration;
        Assert.Equal(TargetOutcome.Activated, target.Outcome);
        Assert.Equal(SlicedOutcome.MovedAway, await source.Completion);
        var resumed = SlicedProcess.FromRestored(target.Process!);
        resumed.Start();
        Assert.Equal(SlicedOutcome.Finished, await resumed.Completion);
        Assert.Equal(native, Encoding.UTF8.GetString([.. console.ToArray(), .. moved.ToArray()]));
        target.Process!.Dispose();
        source.Wasi.Dispose();
    }

    [Fact]
    public async Task A_migration_refused_at_its_stop_is_aborted_and_the_process_finishes_on_the_source()
    {
        var (source, module, console, native) = StartHeld("twice");
        var (migration, target) = await Migrate(source, module, (_, _) => throw new InvalidOperationException("nothing may be restored"));
        var failure = await Assert.ThrowsAsync<MigrationAbortedException>(() => migration);
        Assert.True(failure.Stage == MigrationStage.StopAndCopy && failure.Message.Contains("they may be one file"), $"{failure.Stage}: {failure.Message}");
        Assert.Equal(TargetOutcome.NotReceived, target.Outcome);
        Assert.Equal(SlicedOutcome.Finished, await source.Completion);
        Assert.Equal(native, Encoding.UTF8.GetString(console.ToArray()));
        source.Wasi.Dispose();
    }
}
