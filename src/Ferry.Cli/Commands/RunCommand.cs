using System.CommandLine;
using System.Net;
using Ferry.Engine;
using Ferry.Wasi;
using Ferry.Wasi.Resources;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;

namespace Ferry.Cli.Commands;

/// <summary>`ferry run`: runs a WASI command module here, with only the directories and sockets granted.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var dirs = new Option<string[]>("--dir") { Description = "Grant a host directory, seen by the guest as GUEST (default: the host path)", HelpName = "HOST[::GUEST]" };
        var envs = new Option<string[]>("--env") { Description = "Set an environment variable for the guest", HelpName = "K=V" };
        var listens = new Option<string[]>("--tcplisten") { Description = "Grant a listening TCP socket, as a preopened descriptor after the directories (port 0: a free port, printed on stderr)", HelpName = "HOST:PORT" };
        var fuel = new Option<long?>("--fuel") { Description = $"Stop after this many Wasm instructions (exit {ExitCodes.OutOfFuel})", HelpName = "N" };
        var stop = SnapshotOptions.Create();
        var module = new Argument<FileInfo>("MODULE") { Description = "The WebAssembly module (a WASI command exporting _start)" };
        var arguments = new Argument<string[]>("ARGS") { Description = "Arguments passed to the guest", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("run", $"""
            Run a WebAssembly module with WASI. Exits with the guest's exit code; {ExitCodes.Trap} when it traps,
            {ExitCodes.Snapshotted} when it was stopped and saved to a snapshot, {ExitCodes.OutOfFuel} when --fuel runs out,
            {ExitCodes.CannotStart} when it cannot start, {ExitCodes.Usage} for bad input.
            """)
        {
            dirs, envs, listens, fuel, stop.PauseAfter, stop.Snapshot, stop.SnapshotOn, stop.NoCode, module, arguments,
        };
        command.SetAction(result =>
        {
            var options = stop.Read(result, result.GetValue(fuel));
            return options is null
                ? ExitCodes.Usage
                : Run(result.GetValue(module)!, result.GetValue(arguments) ?? [], result.GetValue(dirs) ?? [], result.GetValue(envs) ?? [], result.GetValue(listens) ?? [], options);
        });
        return command;
    }

    private static int Fail(int code, string message) => ProcessRunner.Fail(code, message);

    private static int Run(FileInfo file, string[] arguments, string[] dirs, string[] envs, string[] listens, StopOptions options)
    {
        Module module;
        try
        {
            module = Module.Load(File.ReadAllBytes(file.FullName));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(ExitCodes.Usage, $"cannot read {file}: {e.Message}");
        }
        catch (WasmException e)
        {
            return Fail(ExitCodes.Usage, $"{file}: {e.Message}");
        }

        var console = new GuestConsole();
        WasiConfiguration configuration;
        try
        {
            configuration = new WasiConfiguration
            {
                Arguments = [file.ToString(), .. arguments],
                Environment = [.. envs.Select(ParseEnvironment)],
                Preopens = [.. dirs.Select(Preopen.Parse)],
                Listeners = [.. listens.Select(IPEndPoint.Parse)],
                Stdin = Console.OpenStandardInput(),
                Stdout = console.Stdout,
                Stderr = console.Stderr,
            };
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return Fail(ExitCodes.Usage, e.Message);
        }

        WasiProcess wasi;
        try
        {
            wasi = new WasiProcess(configuration);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            return Fail(ExitCodes.CannotStart, $"--tcplisten: {e.Message}");
        }
        using (wasi)
        {
            // Port 0 asks the kernel for a free port: say which, as nothing else could tell the user where to connect.
            foreach (var (_, resource) in wasi.Resources.Entries())
            {
                if (resource is ListenerResource listener && configuration.Listeners[listener.Index].Port == 0)
                    Console.Error.WriteLine($"ferry: --tcplisten {configuration.Listeners[listener.Index]} listens on {listener.Location}");
            }
            var store = new Store();
            var linker = new Linker();
            wasi.Define(linker);
            Instance instance;
            try
            {
                instance = linker.Instantiate(store, module);
            }
            catch (LinkException e)
            {
                return Fail(ExitCodes.CannotStart, $"{file}: {e.Message}");
            }
            catch (TrapException e)
            {
                return Fail(ExitCodes.Trap, $"trap during instantiation: {e.Message}");
            }
            if (!instance.TryGetExport("_start", out var start) || start.AsFunction is not { } entry)
                return Fail(ExitCodes.CannotStart, $"{file} exports no _start function: it is not a WASI command");
            return ProcessRunner.Run(module, instance, store.Start(entry), wasi, options, console);
        }
    }

    private static KeyValuePair<string, string> ParseEnvironment(string assignment)
    {
        var equals = assignment.IndexOf('=');
        if (equals <= 0) throw new ArgumentException($"--env {assignment}: expected K=V");
        return new(assignment[..equals], assignment[(equals + 1)..]);
    }
}
