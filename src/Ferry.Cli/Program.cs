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
return root.Parse(GuestArguments.Separate(root, args)).Invoke();
