using System.CommandLine;

namespace Ferry.Cli.Commands;

/// <summary>The options shared by `run` and `resume` for stopping a process and saving it.</summary>
internal sealed class SnapshotOptions
{
    public Option<long?> PauseAfter { get; } = new("--pause-after-instructions") { Description = "Stop after exactly N more Wasm instructions and save the process to --snapshot", HelpName = "N" };
    public Option<string?> Snapshot { get; } = new("--snapshot") { Description = "The snapshot file to save the process to when it stops", HelpName = "FILE" };
    public Option<string?> SnapshotOn { get; } = new("--snapshot-on") { Description = "Stop and save to --snapshot when this signal arrives", HelpName = "SIGTERM" };
    public Option<bool> NoCode { get; } = new("--no-code") { Description = "Leave the module out of the snapshot; resume finds it by its SHA-256" };

    public static SnapshotOptions Create() => new();

    /// <summary>The stop options, or null (after printing why) when they are inconsistent.</summary>
    public StopOptions? Read(ParseResult result, long? fuel)
    {
        var pauseAfter = result.GetValue(PauseAfter);
        var file = result.GetValue(Snapshot);
        var on = result.GetValue(SnapshotOn);
        string? problem = null;
        if (fuel is < 0 || pauseAfter is < 0) problem = "instruction counts must not be negative";
        else if (fuel is not null && pauseAfter is not null) problem = "--fuel and --pause-after-instructions cannot be combined";
        else if (on is not null && on != "SIGTERM") problem = $"--snapshot-on {on}: only SIGTERM is supported";
        else if ((pauseAfter is not null || on is not null) && file is null) problem = "--pause-after-instructions and --snapshot-on need --snapshot FILE";
        if (problem is null) return new StopOptions(fuel, pauseAfter, file, on is not null, !result.GetValue(NoCode));
        Console.Error.WriteLine($"ferry: {problem}");
        return null;
    }
}
