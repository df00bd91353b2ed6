using Ferry.Wasi.Resources;

namespace Ferry.Wasi.Sandbox;

/// <summary>
/// Resolves a guest path against a directory handle without leaving its preopen: components are walked one by
/// one, ".." may not climb above the preopen root, absolute paths are refused, and every symbolic link met on
/// the way is expanded here (never by the OS), so a link pointing outside is refused too.
/// </summary>
internal static class PathResolver
{
    private const int MaxSymlinkExpansions = 40;

    /// <summary>The resolved location: host path and components below the preopen root.</summary>
    internal readonly record struct Resolved(string HostPath, List<string> Components, Preopen Preopen);

    public static Resolved Resolve(DirectoryResource directory, string path, bool followFinalSymlink)
    {
        if (path.Length == 0) throw new WasiError(Errno.NoEntry);
        if (path.Contains('\0')) throw new WasiError(Errno.IllegalSequence);
        if (path[0] == '/') throw new WasiError(Errno.NotCapable);
        var preopen = directory.Preopen;
        var components = new List<string>(directory.Components);
        var pending = new Stack<string>(Split(path).Reverse());
        var trailingSlash = path.EndsWith('/');
        var expansions = 0;
        while (pending.Count > 0)
        {
            var component = pending.Pop();
            if (component == ".") continue;
            if (component == "..")
            {
                if (components.Count == 0) throw new WasiError(Errno.NotCapable);
                components.RemoveAt(components.Count - 1);
                continue;
            }
            components.Add(component);
            var isFinal = pending.Count == 0;
            if (isFinal && !followFinalSymlink && !trailingSlash) break;
            var host = Combine(preopen, components);
            var info = new FileInfo(host);
            if (info.LinkTarget is not { } target) continue;
            if (++expansions > MaxSymlinkExpansions) throw new WasiError(Errno.Loop);
            if (target.Length == 0 || target[0] == '/') throw new WasiError(Errno.NotCapable);
            components.RemoveAt(components.Count - 1);
            foreach (var part in Split(target).Reverse()) pending.Push(part);
        }
        return new Resolved(Combine(preopen, components), components, preopen);
    }

    private static IEnumerable<string> Split(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries);

    private static string Combine(Preopen preopen, List<string> components) =>
        components.Count == 0 ? preopen.HostPath : Path.Combine([preopen.HostPath, .. components]);
}
