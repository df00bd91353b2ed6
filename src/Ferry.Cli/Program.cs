using System.CommandLine;
using Ferry.Cli.Commands;

var root = new RootCommand("Ferry moves running WebAssembly programs between machines.")
{
    RunCommand.Create(),
    ResumeCommand.Create(),
    SnapshotCommand.Create(),
    DemoCommand.Create(),
};
return root.Parse(args).Invoke();
