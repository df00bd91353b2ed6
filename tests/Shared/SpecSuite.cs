using System.Diagnostics;

namespace Ferry.Tests.Shared;

/// <summary>Finds the WebAssembly spec suite (shared/wasm-testsuite beside the checkout) and converts .wast files with wast2json.</summary>
public static class SpecSuite
{
    public const string WabtCannotParse =
        "wabt 1.0.32 cannot parse this file: it uses (table.get (local.get $i)) without a table index, which came later";
    public const string SimdNotSupported = "not supported yet: SIMD";

    private static readonly string[] WabtUnparsable = ["table_fill", "table_get", "table_grow", "table_set", "table_size"];

    /// <summary>The suite directory, or null: $FERRY_WASM_TESTSUITE, else shared/wasm-testsuite in an ancestor directory.</summary>
    public static string? Directory { get; } = Locate();

    // In the test project's output directory, which one test process uses at a time: the runner may kill a test process
    // before an exit handler has removed a temporary directory, and one left here is cleared by the next run.
    private static readonly string ConvertedRoot = Cleared(Path.Combine(AppContext.BaseDirectory, "converted-spec"));

    private static string Cleared(string path)
    {
        if (System.IO.Directory.Exists(path)) System.IO.Directory.Delete(path, recursive: true);
        return path;
    }

    private static string? Locate()
    {
        var configured = Environment.GetEnvironmentVariable("FERRY_WASM_TESTSUITE");
        if (!string.IsNullOrEmpty(configured)) return System.IO.Directory.Exists(configured) ? configured : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "wasm-testsuite");
            if (System.IO.Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static IEnumerable<string> Files() =>
        Directory is null
            ? []
            : System.IO.Directory.GetFiles(Directory, "*.wast").Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal)!;

    public static IEnumerable<string> RunnableFiles() =>
        Files().Where(name => !name.StartsWith("simd_", StringComparison.Ordinal) && !WabtUnparsable.Contains(name));

    public static IEnumerable<string> SimdFiles() => Files().Where(name => name.StartsWith("simd_", StringComparison.Ordinal));

    public static IEnumerable<string> WabtUnparsableFiles() => Files().Where(WabtUnparsable.Contains);

    /// <summary>Runs wast2json on one file and returns the path of its JSON command list.</summary>
    public static string Convert(string name)
    {
        var outputDir = Path.Combine(ConvertedRoot, name);
        var json = Path.Combine(outputDir, name + ".json");
        if (File.Exists(json)) return json;
        System.IO.Directory.CreateDirectory(outputDir);
        var start = new ProcessStartInfo("wast2json")
        {
            ArgumentList = { Path.Combine(Directory!, name + ".wast"), "-o", json },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException("wast2json is not installed: run ./test.sh, which installs Debian's wabt package");
        }
        var errors = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"wast2json failed on {name}.wast: {errors}");
        return json;
    }
}
