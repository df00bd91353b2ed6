using Ferry.Tests.Shared;

namespace Ferry.Wasi.Tests;

/// <summary>Deterministic guests print the same bytes and exit with the same code under `ferry run` as natively.</summary>
public sealed class NativeEquivalenceTests
{
    private static void AssertSame(Guests.Result native, Guests.Result ferry)
    {
        Assert.True(ferry.Stderr.Length == 0 || native.Stderr.Length > 0, $"ferry wrote to stderr: {ferry.Stderr}");
        Assert.Equal(native.Text, ferry.Text);
        Assert.Equal(native.Stdout, ferry.Stdout);
        Assert.Equal(native.ExitCode, ferry.ExitCode);
    }

    [Theory]
    [InlineData("hello")]
    [InlineData("clock_random")]
    [InlineData("lisp")]
    public void A_guest_without_arguments_behaves_as_natively(string guest) =>
        AssertSame(Guests.NativeRun(guest, []), Guests.Ferry(["run", Guests.Wasm(guest)]));

    [Theory]
    [InlineData("fib", "20")]
    [InlineData("loops", "50")]
    [InlineData("sieve", "1")]
    [InlineData("matmul", "1")]
    [InlineData("memcpy", "30")]
    [InlineData("hashtable", "2")]
    [InlineData("quicksort", "1")]
    public void The_benchmark_kernels_as_whole_programs_print_what_their_native_builds_print(string kernel, string n)
    {
        var native = Guests.Run(new System.Diagnostics.ProcessStartInfo(Path.Combine(Guests.OutputDirectory, "programs", kernel)) { ArgumentList = { n } });
        AssertSame(native, Guests.Ferry(["run", Guests.Wasm("programs/" + kernel), n]));
    }

    [Fact]
    public void Bulk_output_through_fd_write_matches_the_native_build()
    {
        var native = Guests.NativeRun("io", ["write", "3"]);
        var ferry = Guests.Ferry(["run", Guests.Wasm("io"), "write", "3"]);
        Assert.Equal(3 << 20, ferry.Stdout.Length);
        AssertSame(native, ferry);
    }

    [Fact]
    public void Arguments_environment_and_exit_code_pass_through()
    {
        var native = Guests.NativeRun("args_env", ["one", "two words", "three"], new Dictionary<string, string> { ["FERRY_COLOR"] = "blue" });
        var ferry = Guests.Ferry(["run", "--env", "FERRY_COLOR=blue", Guests.Wasm("args_env"), "one", "two words", "three"]);
        AssertSame(native, ferry);
        Assert.Equal(3, ferry.ExitCode);
    }

    [Fact]
    public void File_and_directory_operations_match_the_native_build()
    {
        var nativeDir = Directory.CreateTempSubdirectory("ferry-files-native-");
        var ferryDir = Directory.CreateTempSubdirectory("ferry-files-guest-");
        try
        {
            var native = Guests.NativeRun("files", [nativeDir.FullName]);
            var ferry = Guests.Ferry(["run", "--dir", $"{ferryDir.FullName}::/data", Guests.Wasm("files"), "/data"]);
            AssertSame(native, ferry);
            Assert.Contains("done", ferry.Text);
            Assert.Empty(ferryDir.EnumerateFileSystemInfos());
        }
        finally
        {
            nativeDir.Delete(true);
            ferryDir.Delete(true);
        }
    }

    [Theory]
    [InlineData("sequential")]
    [InlineData("random")]
    [InlineData("hot")]
    public void The_dirtier_checksum_matches_the_native_build(string locality)
    {
        string[] arguments = ["--mib", "4", "--iterations", "50", "--writes-per-iteration", "2000", "--locality", locality, "--report", "25"];
        AssertSame(Guests.NativeRun("dirtier", arguments), Guests.Ferry(["run", Guests.Wasm("dirtier"), .. arguments]));
    }

    [Fact]
    public void Bad_dirtier_arguments_exit_2_as_natively()
    {
        var native = Guests.NativeRun("dirtier", ["--locality", "sideways"]);
        var ferry = Guests.Ferry(["run", Guests.Wasm("dirtier"), "--locality", "sideways"]);
        Assert.Equal(2, native.ExitCode);
        Assert.Equal(native.ExitCode, ferry.ExitCode);
        Assert.Equal(native.Stderr, ferry.Stderr);
    }
}
