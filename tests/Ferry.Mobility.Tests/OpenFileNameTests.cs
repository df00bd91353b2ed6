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
/// A snapshot reopens a process's open files by path: a file the guest renamed while open is found at its new name,
/// and a file whose name is gone (unlinked, or replaced by another file) refuses the capture rather than resuming on
/// nothing or on someone else's file (SQLite's temporary files are opened, then unlinked at once).
/// </summary>
public sealed class OpenFileNameTests
{
    private const long StopInTheLoop = 10_000_000;

    private static (Guests.Result Run, string Snapshot) RunAndStop(string mode)
    {
        var directory = Directory.CreateTempSubdirectory("ferry-open-file-").FullName;
        var snapshot = Path.Combine(directory, "stopped.snap");
        var data = Directory.CreateDirectory(Path.Combine(directory, "data")).FullName;
        var run = Guests.Ferry(["run", "--dir", $"{data}::.", "--pause-after-instructions", StopInTheLoop.ToString(), "--snapshot", snapshot, Guests.Wasm("open_renamed"), mode]);
        return (run, snapshot);
    }

    [Fact]
    public void A_file_renamed_while_open_is_reopened_at_its_new_name_and_the_output_equals_the_native_run()
    {
        var native = Guests.NativeRun("open_renamed", ["rename"], workingDirectory: Directory.CreateTempSubdirectory("ferry-open-file-native-").FullName);
        var (run, snapshot) = RunAndStop("rename");
        Assert.Equal(85, run.ExitCode);
        var resumed = Guests.Ferry(["resume", snapshot]);
        Assert.Equal(0, resumed.ExitCode);
        Assert.Equal(Encoding.UTF8.GetString(native.Stdout), Encoding.UTF8.GetString([.. run.Stdout, .. resumed.Stdout]));
    }

    [Theory]
    [InlineData("unlink")]
    [InlineData("replace")]
    public void A_file_whose_name_is_gone_refuses_the_capture_with_the_reason(string mode)
    {
        var (run, snapshot) = RunAndStop(mode);
        Assert.Equal(125, run.ExitCode);
        Assert.Contains("whose name was removed while it was open", run.Stderr);
        Assert.False(File.Exists(snapshot));
    }

    [Fact]
    public async Task A_migration_of_a_process_holding_a_file_whose_name_is_gone_is_aborted_and_the_process_finishes_on_the_source()
    {
        var data = Directory.CreateTempSubdirectory("ferry-open-file-").FullName;
        var native = Guests.NativeRun("open_renamed", ["unlink"], workingDirectory: Directory.CreateTempSubdirectory("ferry-open-file-native-").FullName);
        var module = Module.Load(File.ReadAllBytes(Guests.Wasm("open_renamed")));
        var console = new MemoryStream();
        var wasi = new WasiProcess(new WasiConfiguration { Arguments = ["open_renamed", "unlink"], Stdout = console, Preopens = [new Preopen(data, ".")] });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, module);
        var execution = store.Start(instance.GetFunction("_start"));
        // A million instructions take it past the open and the unlink into its loop; held there, the migration surely finds it so.
        Assert.Equal(ExecutionStatus.OutOfFuel, execution.Run(fuel: 1_000_000));
        var source = new SlicedProcess(module, instance, execution, wasi, sliceFuel: 100_000);
        source.Start();
        await source.AtSafepointAsync(() =>
        {
            source.Hold();
            return 0;
        }, CancellationToken.None);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var target = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            return await MigrationTarget.ReceiveAsync(client.GetStream(), _ => Task.FromResult(Admission.Admit(module)),
                (_, _) => throw new InvalidOperationException("nothing may be restored"));
        });
        using var connection = new TcpClient();
        await connection.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var failure = await Assert.ThrowsAsync<MigrationAbortedException>(() =>
            MigrationSource.MigrateAsync(connection.GetStream(), source, new MigrationOptions { Strategy = MigrationStrategy.StopAndCopy }));
        Assert.True(failure.Stage == MigrationStage.StopAndCopy && failure.Message.Contains("whose name was removed while it was open"), $"{failure.Stage}: {failure.Message}");
        Assert.Equal(TargetOutcome.NotReceived, (await target).Outcome);
        listener.Stop();
        Assert.Equal(SlicedOutcome.Finished, await source.Completion);
        Assert.Equal(Encoding.UTF8.GetString(native.Stdout), Encoding.UTF8.GetString(console.ToArray()));
        wasi.Dispose();
    }
}
