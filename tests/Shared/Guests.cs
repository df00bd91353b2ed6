using System.Diagnostics;
using System.Text;

namespace Ferry.Tests.Shared;

/// <summary>The guest programs built by guests/build.sh, and running them with the real `ferry` command.</summary>
public static class Guests
{
    public static string OutputDirectory { get; } = Locate();

    private static string Locate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "guests", "out");
            if (File.Exists(Path.Combine(dir.FullName, "guests", "build.sh"))) return candidate;
        }
        throw new InvalidOperationException("guests/ not found above the test assembly");
    }

    public static string Wasm(string name)
    {
        var path = Path.Combine(OutputDirectory, name + ".wasm");
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} is missing: run guests/build.sh (./test.sh does)");
    }

    public static string Native(string name) => Path.Combine(OutputDirectory, "native", name);

    public sealed record Result(int ExitCode, byte[] Stdout, string Stderr)
    {
        public string Text => Encoding.UTF8.GetString(Stdout);
    }

    /// <summary>Runs `ferry ARGS` as a child process (the ferry.dll beside the test assembly).</summary>
    public static Result Ferry(IEnumerable<string> arguments, string? stdin = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(AppContext.BaseDirectory, "ferry.dll") } };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        return Run(start, stdin, timeout);
    }

    public static Result Run(ProcessStartInfo start, string? stdin = null, TimeSpan? timeout = null)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = true;
        using var process = Process.Start(start)!;
        var output = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(output);
        var errors = process.StandardError.ReadToEndAsync();
        if (stdin is not null) process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{start.FileName} {string.Join(' ', start.ArgumentList)} did not finish");
        }
        copy.Wait();
        return new Result(process.ExitCode, output.ToArray(), errors.Result);
    }

    /// <summary>Runs the native build of a guest (in <paramref name="workingDirectory"/> when given).</summary>
    public static Result NativeRun(string name, IEnumerable<string> arguments, IDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(Native(name)) { WorkingDirectory = workingDirectory ?? "" };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        if (environment is not null)
        {
            foreach (var (key, value) in environment) start.Environment[key] = value;
        }
        return Run(start);
    }
}
