using System.CommandLine;
using Ferry.Mobility;
using Ferry.Mobility.Snapshots;

namespace Ferry.Cli.Commands;

/// <summary>`ferry resume`: continues a saved process exactly where it stopped.</summary>
internal static class ResumeCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "The snapshot to resume" };
        var module = new Option<FileInfo?>("--module") { Description = "The module, when the snapshot does not embed it (default: a .wasm beside the snapshot with the right SHA-256)" };
        var stop = SnapshotOptions.Create();
        var command = new Command("resume", $"Continue a saved process. Exit codes as for run; {ExitCodes.Usage} for an unreadable or corrupt snapshot.")
        {
            file, module, stop.PauseAfter, stop.Snapshot, stop.SnapshotOn, stop.NoCode,
        };
        command.SetAction(result =>
        {
            var options = stop.Read(result, null);
            return options is null ? ExitCodes.Usage : Resume(result.GetValue(file)!, result.GetValue(module), options);
        });
        return command;
    }

    /// <summary>Finds a module by SHA-256: the one named, or any .wasm in the snapshot's directory.</summary>
    internal static Func<string, byte[]?> ModuleFinder(FileInfo snapshot, FileInfo? module) => hash =>
    {
        var candidates = module is not null ? [module.FullName] : Directory.EnumerateFiles(snapshot.DirectoryName ?? ".", "*.wasm");
        foreach (var candidate in candidates)
        {
            var bytes = File.ReadAllBytes(candidate);
            if (SnapshotWriter.Hash(bytes) == hash) return bytes;
        }
        return null;
    };

    private static int Resume(FileInfo file, FileInfo? module, StopOptions options)
    {
        RestoredProcess process;
        var console = new GuestConsole();
        try
        {
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            process = ProcessSnapshot.Restore(stream, Console.OpenStandardInput(), console.Stdout, console.Stderr, ModuleFinder(file, module));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ProcessRunner.Fail(ExitCodes.Usage, $"cannot read {file}: {e.Message}");
        }
        catch (Exception e) when (e is SnapshotFormatException or RestoreException)
        {
            return ProcessRunner.Fail(ExitCodes.Usage, $"{file}: {e.Message}");
        }
        using (process)
        {
            return ProcessRunner.Run(process.Module, process.Instance, process.Execution, process.Wasi, options, console);
        }
    }
}
