using Ferry.Tests.Shared;

namespace Ferry.Wasi.Tests;

/// <summary>How descriptors move between numbers, as real programs rely on it.</summary>
public sealed class DescriptorTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("ferry-descriptors-");

    public void Dispose() => _directory.Delete(recursive: true);

    /// <summary>
    /// Without dup2, a program parks stdout on another descriptor's number with fd_renumber, gives descriptor 1 to a file,
    /// and brings stdout back (Yosys runs its linked-in ABC so): renumbering onto a number that is closed works as in
    /// wasmtime, the moved descriptor is gone, renumbering onto itself changes nothing, and no output is lost.
    /// </summary>
    [Fact]
    public void Stdout_parked_with_fd_renumber_while_a_file_takes_descriptor_1_comes_back_with_nothing_lost()
    {
        var result = Guests.Ferry(["run", "--dir", $"{_directory.FullName}::/data", Guests.Wasm("redirect"), "/data"]);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(
            "before the redirection\n" +
            "after the redirection\n" +
            "park 0, into 0, moved descriptor EBADF, back 0, onto itself 0\n" +
            "the file caught: into the file\n", result.Text);
        Assert.Equal("into the file\n", File.ReadAllText(Path.Combine(_directory.FullName, "caught.txt")));
    }
}
