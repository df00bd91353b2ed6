using System.Collections.Concurrent;
using System.Diagnostics;

namespace Ferry.Tests.Shared;

/// <summary>Converts WebAssembly text to binary with wabt's wat2wasm (installed by test.sh), once per text.</summary>
public static class Wat
{
    private static readonly ConcurrentDictionary<string, byte[]> Cache = new();

    public static byte[] ToWasm(string text) => Cache.GetOrAdd(text, Convert);

    /// <summary>A .wat file from the test project's Programs folder.</summary>
    public static byte[] Program(string name) => ToWasm(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Programs", name + ".wat")));

    private static byte[] Convert(string text)
    {
        var directory = Directory.CreateTempSubdirectory("ferry-wat-");
        try
        {
            var input = Path.Combine(directory.FullName, "module.wat");
            var output = Path.Combine(directory.FullName, "module.wasm");
            File.WriteAllText(input, text);
            var start = new ProcessStartInfo("wat2wasm") { RedirectStandardError = true, ArgumentList = { "--debug-names", input, "-o", output } };
            Process process;
            try
            {
                process = Process.Start(start)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new InvalidOperationException("wat2wasm is not installed: run ./test.sh, which installs Debian's wabt package");
            }
            var errors = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0) throw new InvalidOperationException($"wat2wasm rejected the test program: {errors}");
            return File.ReadAllBytes(output);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
