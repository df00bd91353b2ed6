using Ferry.Tests.Shared;
using Xunit.Abstractions;

namespace Ferry.Conformance;

/// <summary>Every command of every non-SIMD file of the WebAssembly 2.0 spec suite, one test per file.</summary>
public sealed class SpecConformanceTests(ConformanceReport report, ITestOutputHelper output) : IClassFixture<ConformanceReport>
{
    public static TheoryData<string> Runnable() => new(SpecSuite.RunnableFiles());
    public static TheoryData<string> Simd() => new(SpecSuite.SimdFiles());
    public static TheoryData<string> WabtUnparsable() => new(SpecSuite.WabtUnparsableFiles());

    [SpecTheory]
    [MemberData(nameof(Runnable))]
    public void Every_command_of_the_spec_file_passes(string file)
    {
        var results = WastRunner.RunFile(SpecSuite.Convert(file));
        var failures = results.Where(r => !r.Passed).ToList();
        var textModules = results.Count(r => r.TextModule);
        var note = textModules == 0 ? "" : $"{textModules} text-format malformed modules rejected (binary decoder)";
        report.Add(file, results.Count - failures.Count, failures.Count, 0, note);
        output.WriteLine($"{file}: {results.Count - failures.Count} passed, {failures.Count} failed of {results.Count} commands. {note}");
        foreach (var failure in failures.Take(50)) output.WriteLine($"  line {failure.Line} {failure.Type}: {failure.Failure}");
        Assert.True(failures.Count == 0,
            $"{failures.Count} of {results.Count} commands failed in {file}.wast; first: line {failures.FirstOrDefault()?.Line} {failures.FirstOrDefault()?.Type}: {failures.FirstOrDefault()?.Failure}");
    }

    [SpecTheory]
    [MemberData(nameof(Simd), Skip = SpecSuite.SimdNotSupported)]
    [MemberData(nameof(WabtUnparsable), Skip = SpecSuite.WabtCannotParse)]
    public void Spec_file_is_skipped_with_its_reason(string file) => Assert.Fail($"{file} should have been skipped");
}
