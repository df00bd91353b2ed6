using System.Collections.Concurrent;

namespace Ferry.Tests.Shared;

/// <summary>
/// Temporary directories that tests hand to `ferry` processes and then leave to them, removed when the test process exits
/// (a test run left about 600 behind before). A test process that the runner kills before its exit handlers ran keeps them.
/// </summary>
public static class TemporaryDirectories
{
    private static readonly ConcurrentBag<string> Created = [];

    static TemporaryDirectories() => AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveAll();

    /// <summary>A new empty directory under the temporary folder, named <paramref name="prefix"/> and a random suffix.</summary>
    public static string Create(string prefix) => Remember(Directory.CreateTempSubdirectory(prefix).FullName);

    /// <summary>Removes <paramref name="path"/> (a directory or a file) with everything in it when the test process exits.</summary>
    public static string Remember(string path)
    {
        Created.Add(path);
        return path;
    }

    private static void RemoveAll()
    {
        foreach (var path in Created)
        {
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A file still held open by a process the test started: left for the system's own clean-up.
            }
        }
    }
}
