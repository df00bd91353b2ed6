using System.Runtime.InteropServices;
using Ferry.Engine;
using Ferry.Mobility;
using Ferry.Wasi;
using Ferry.Wasm;

namespace Ferry.Cli.Commands;

/// <summary>How a run may stop early and be saved.</summary>
internal sealed record StopOptions(long? Fuel, long? PauseAfterInstructions, string? SnapshotFile, bool SnapshotOnSigterm, bool EmbedCode);

/// <summary>Runs a started or restored process to its end, or until it is stopped and saved to a snapshot.</summary>
internal static class ProcessRunner
{
    public static int Run(Module module, Instance instance, Execution execution, WasiProcess wasi, StopOptions options, GuestConsole console)
    {
        using var sigterm = options.SnapshotOnSigterm
            ? PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                execution.RequestPause();
            })
            : null;
        var budget = options.PauseAfterInstructions ?? options.Fuel ?? long.MaxValue;
        var status = execution.Run(budget);
        if (status != ExecutionStatus.Finished) console.EndGuestLine();
        switch (status)
        {
            case ExecutionStatus.Finished:
                return execution.ExitCode ?? 0;
            case ExecutionStatus.Trapped:
                return Fail(ExitCodes.Trap, $"trap: {execution.Trap!.Message}");
            case ExecutionStatus.OutOfFuel when options.PauseAfterInstructions is null:
                return Fail(ExitCodes.OutOfFuel, $"out of fuel after {execution.InstructionsExecuted:N0} instructions");
            case ExecutionStatus.OutOfFuel:
            case ExecutionStatus.Paused:
                if (options.SnapshotFile is null) return Fail(ExitCodes.Snapshotted, $"stopped after {execution.InstructionsExecuted:N0} instructions; no --snapshot file to save to");
                return Save(module, instance, execution, wasi, options);
            default:
                return Fail(ExitCodes.CannotStart, $"the run stopped with {status}");
        }
    }

    private static int Save(Module module, Instance instance, Execution execution, WasiProcess wasi, StopOptions options)
    {
        var file = options.SnapshotFile!;
        var temporary = file + ".partial";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                ProcessSnapshot.Capture(stream, module, instance, execution, wasi, options.EmbedCode);
            }
            File.Move(temporary, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            File.Delete(temporary);
            return Fail(ExitCodes.CannotStart, $"cannot save the snapshot: {e.Message}");
        }
        return Fail(ExitCodes.Snapshotted, $"stopped after {execution.InstructionsExecuted:N0} instructions; snapshot saved to {file} ({new FileInfo(file).Length:N0} bytes)");
    }

    public static int Fail(int code, string message)
    {
        Console.Error.WriteLine($"ferry: {message}");
        return code;
    }
}
