using Ferry.Tests.Shared;
using System.Collections.Concurrent;
using System.Text;

namespace Ferry.Conformance;

/// <summary>Collects per-file counts and writes the table (artifacts/conformance.txt) when the suite's tests are done.</summary>
public sealed class ConformanceReport : IDisposable
{
    private readonly ConcurrentDictionary<string, (int Passed, int Failed, int Skipped, string Note)> _rows = new();

    public void Add(string file, int passed, int failed, int skipped, string note) => _rows[file] = (passed, failed, skipped, note);

    public static string Format(IEnumerable<KeyValuePair<string, (int Passed, int Failed, int Skipped, string Note)>> rows)
    {
        var text = new StringBuilder();
        text.AppendLine($"{"file",-28} {"passed",7} {"failed",7} {"skipped",8}  note");
        int passed = 0, failed = 0, skipped = 0;
        foreach (var (file, row) in rows.OrderBy(r => r.Key, StringComparer.Ordinal))
        {
            text.AppendLine($"{file,-28} {row.Passed,7} {row.Failed,7} {row.Skipped,8}  {row.Note}");
            passed += row.Passed;
            failed += row.Failed;
            skipped += row.Skipped;
        }
        text.AppendLine($"{"total",-28} {passed,7} {failed,7} {skipped,8}");
        return text.ToString();
    }

    public void Dispose()
    {
        if (_rows.IsEmpty) return;
        foreach (var file in SpecSuite.SimdFiles()) _rows.TryAdd(file, (0, 0, 0, SpecSuite.SimdNotSupported));
        foreach (var file in SpecSuite.WabtUnparsableFiles()) _rows.TryAdd(file, (0, 0, 0, SpecSuite.WabtCannotParse));
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Ferry.slnx"))) root = root.Parent;
        if (root is null) return;
        var artifacts = Path.Combine(root.FullName, "artifacts");
        Directory.CreateDirectory(artifacts);
        File.WriteAllText(Path.Combine(artifacts, "conformance.txt"), Format(_rows));
    }
}
