namespace Ferry.Cli.Commands;

/// <summary>Exit codes of ferry itself; otherwise a run exits with the guest's own code.</summary>
internal static class ExitCodes
{
    /// <summary>Bad usage or input: unreadable, malformed or invalid module, unusable --dir.</summary>
    public const int Usage = 2;
    /// <summary>The process was stopped and saved to a snapshot; `ferry resume` continues it.</summary>
    public const int Snapshotted = 85;
    /// <summary>The run stopped because the --fuel budget was spent.</summary>
    public const int OutOfFuel = 124;
    /// <summary>The module could not be started: unknown import, no _start.</summary>
    public const int CannotStart = 125;
    /// <summary>The guest trapped, as a process aborted by SIGABRT would.</summary>
    public const int Trap = 134;
}
