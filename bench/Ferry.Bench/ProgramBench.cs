using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Ferry.Bench;

/// <summary>
/// Whole programs as a user runs them, each a fresh OS process timed from start to exit (best of three):
/// the kernels as WASI commands and the lisp interpreter guest (malloc-heavy: its memory grows in small steps) under
/// `ferry run`, natively and under node:wasi; and 1 GiB through fd_read and
/// fd_write. Ferry's process time includes .NET start-up, measured separately with the hello guest.
/// </summary>
internal static class ProgramBench
{
    private static readonly (string Name, uint N)[] Programs =
        [("fib", 36), ("loops", 30_000), ("sieve", 10), ("matmul", 30), ("memcpy", 3_000), ("hashtable", 300), ("quicksort", 5)];

    public static int Run(string guests, string? json)
    {
        var ferry = Path.Combine(AppContext.BaseDirectory, "ferry.dll");
        var nodeRunner = Path.Combine(AppContext.BaseDirectory, "node", "run-wasi.mjs");
        var startup = Time("dotnet", [ferry, "run", Path.Combine(guests, "hello.wasm")]);
        Console.WriteLine($"ferry start-up (hello.wasm): {startup:F0} ms");
        Console.WriteLine($"{"program",-10} {"native ms",10} {"node ms",9} {"ferry ms",9} {"ferry/native",13} {"ferry/node",11}");
        var rows = new List<object>();
        var ratios = new List<(double Native, double Node)>();
        var programs = Programs.Select(p => (p.Name, Wasm: Path.Combine(guests, "programs", p.Name + ".wasm"), Native: Path.Combine(guests, "programs", p.Name), Arguments: new[] { p.N.ToString(CultureInfo.InvariantCulture) }))
            .Append(("lisp", Path.Combine(guests, "lisp.wasm"), Path.Combine(guests, "native", "lisp"), []));
        foreach (var (name, wasm, nativeBuild, arguments) in programs)
        {
            var native = Time(nativeBuild, arguments);
            var node = Time("node", ["--no-warnings", nodeRunner, wasm, .. arguments]);
            var guest = Time("dotnet", [ferry, "run", wasm, .. arguments]);
            ratios.Add((guest / native, guest / node));
            Console.WriteLine($"{name,-10} {native,10:F1} {node,9:F1} {guest,9:F1} {guest / native,13:F2} {guest / node,11:F2}");
            rows.Add(new { program = name, arguments, nativeMs = native, nodeMs = node, ferryMs = guest });
        }
        var geoNative = Math.Exp(ratios.Average(r => Math.Log(r.Native)));
        var geoNode = Math.Exp(ratios.Average(r => Math.Log(r.Node)));
        Console.WriteLine($"{"geomean",-10} {"",10} {"",9} {"",9} {geoNative,13:F2} {geoNode,11:F2}");

        var io = MeasureIo(guests, ferry, startup);
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(new { startupMs = startup, programs = rows, geoNative, geoNode, io }, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {json}");
        }
        return 0;
    }

    private static object MeasureIo(string guests, string ferry, double startup)
    {
        const long Size = 1L << 30;
        var directory = Directory.CreateTempSubdirectory("ferry-io-");
        try
        {
            var input = Path.Combine(directory.FullName, "input.bin");
            var output = Path.Combine(directory.FullName, "output.bin");
            Console.Error.WriteLine("bench: writing a 1 GiB input file");
            using (var file = File.Create(input))
            {
                var block = new byte[1 << 20];
                Random.Shared.NextBytes(block);
                for (var i = 0; i < Size / block.Length; i++) file.Write(block);
            }
            var native = Path.Combine(guests, "native", "io");
            var wasm = Path.Combine(guests, "io.wasm");
            var readNative = Time(native, ["read", input]);
            var readFerry = Time("dotnet", [ferry, "run", "--dir", directory.FullName, wasm, "read", input]);
            var writeNative = Time("bash", ["-c", $"\"$0\" write 1024 > \"$1\"", native, output]);
            var writeFerry = Time("bash", ["-c", $"dotnet \"$0\" run \"$1\" write 1024 > \"$2\"", ferry, wasm, output]);
            var readInProcess = InProcess(wasm, ["io", "read", input], directory.FullName, Stream.Null);
            var writeInProcess = InProcess(wasm, ["io", "write", "1024"], null, File.Create(output));
            static double Rate(double ms) => Size / (1 << 20) / (ms / 1000);
            Console.WriteLine($"{"1 GiB",-10} {"native MiB/s",13} {"ferry MiB/s",12} {"ferry/native",13} {"in-process MiB/s",17} {"in-process/native",18}");
            foreach (var (what, n, f, p) in new[] { ("fd_read", readNative, readFerry, readInProcess), ("fd_write", writeNative, writeFerry, writeInProcess) })
            {
                Console.WriteLine($"{what,-10} {Rate(n),13:F0} {Rate(f),12:F0} {Rate(f) / Rate(n),13:F2} {Rate(p),17:F0} {Rate(p) / Rate(n),18:F2}");
            }
            return new
            {
                readNativeMs = readNative, readFerryMs = readFerry, readInProcessMs = readInProcess,
                writeNativeMs = writeNative, writeFerryMs = writeFerry, writeInProcessMs = writeInProcess,
            };
        }
        finally
        {
            directory.Delete(true);
        }
    }

    /// <summary>The io guest run inside this process (no process start-up), best of three, in milliseconds.</summary>
    private static double InProcess(string wasm, List<string> arguments, string? directory, Stream stdout)
    {
        using (stdout)
        {
            var module = Ferry.Wasm.Module.Load(File.ReadAllBytes(wasm));
            var best = double.MaxValue;
            for (var i = 0; i < 3; i++)
            {
                using var wasi = new Ferry.Wasi.WasiProcess(new Ferry.Wasi.WasiConfiguration
                {
                    Arguments = arguments,
                    Preopens = directory is null ? [] : [new Ferry.Wasi.Sandbox.Preopen(directory, directory)],
                    Stdout = stdout,
                    Stderr = Stream.Null,
                });
                var store = new Ferry.Engine.Store();
                var linker = new Ferry.Engine.Linker();
                wasi.Define(linker);
                var execution = store.Start(linker.Instantiate(store, module).GetFunction("_start"));
                var clock = Stopwatch.StartNew();
                if (execution.Run() != Ferry.Engine.ExecutionStatus.Finished || execution.ExitCode is not (null or 0))
                    throw new InvalidOperationException($"io {string.Join(' ', arguments)} failed: {execution.Trap?.Message}");
                best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
                if (stdout.CanSeek) stdout.Position = 0;
            }
            return best;
        }
    }

    /// <summary>Best of three wall-clock runs of a process, in milliseconds; a non-zero exit is an error.</summary>
    private static double Time(string program, string[] arguments)
    {
        var best = double.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in arguments) start.ArgumentList.Add(argument);
            var clock = Stopwatch.StartNew();
            using var process = Process.Start(start)!;
            var errors = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            clock.Stop();
            if (process.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {process.ExitCode}: {errors.Result}");
            best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
        }
        return best;
    }
}
