using System.CommandLine;
using Ferry.Cli;
using Ferry.Cli.Commands;

var root = new RootCommand("Ferry moves running WebAssembly programs between machines.")
{
    RunCommand.Create(),
    ResumeCommand.Create(),
    SnapshotCommand.Create(),
    NodeCommands.Node(),
    NodeCommands.Submit(),
    NodeCommands.Ps(),
    NodeCommands.Logs(),
    NodeCommands.Kill(),
    MigrateCommand.Create(),
    MigrateCommand.Stop(),
    MigrateCommand.Continue(),
    DemoCommand.Create(),
};
var parsed = root.Parse(GuestArguments.Separate(root, args));
// After SIGINT or SIGTERM System.CommandLine waits this long for the command to end, then returns and the process exits:
// its default of 2 s cut a node's stop short, in the middle of saving its processes or of a post-copy push.
var stopLimit = NodeCommands.StopLimit(parsed) ?? TimeSpan.FromSeconds(2);
return parsed.Invoke(new InvocationConfiguration { ProcessTerminationTimeout = stopLimit });
