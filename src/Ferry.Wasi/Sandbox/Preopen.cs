namespace Ferry.Wasi.Sandbox;

/// <summary>A host directory granted to the guest (--dir HOST[::GUEST]); the guest sees it as <see cref="GuestPath"/>.</summary>
public sealed record Preopen(string HostPath, string GuestPath)
{
    /// <summary>Parses HOST or HOST::GUEST; the guest name defaults to the host path as given.</summary>
    public static Preopen Parse(string specification)
    {
        var separator = specification.IndexOf("::", StringComparison.Ordinal);
        var host = separator < 0 ? specification : specification[..separator];
        var guest = separator < 0 ? specification : specification[(separator + 2)..];
        if (host.Length == 0 || guest.Length == 0) throw new ArgumentException($"--dir {specification}: expected HOST or HOST::GUEST");
        var full = Path.GetFullPath(host);
        if (!Directory.Exists(full)) throw new ArgumentException($"--dir {specification}: {full} is not a directory");
        return new Preopen(full, guest);
    }
}
