namespace Ferry.Wasi.Resources;

/// <summary>The resource segment of a process: its handles by file descriptor.</summary>
public sealed class ResourceTable : IDisposable
{
    private readonly List<Resource?> _entries = [];

    public int Add(Resource resource)
    {
        var fd = _entries.IndexOf(null);
        if (fd < 0)
        {
            fd = _entries.Count;
            _entries.Add(resource);
        }
        else
        {
            _entries[fd] = resource;
        }
        return fd;
    }

    internal Resource Get(uint fd) => fd < _entries.Count && _entries[(int)fd] is { } resource ? resource : throw new WasiError(Errno.BadFd);

    internal T Get<T>(uint fd, Errno wrongKind = Errno.BadFd) where T : Resource => Get(fd) as T ?? throw new WasiError(wrongKind);

    public bool TryGet(uint fd, out Resource? resource)
    {
        resource = fd < _entries.Count ? _entries[(int)fd] : null;
        return resource is not null;
    }

    internal void Close(uint fd)
    {
        var resource = Get(fd);
        _entries[(int)fd] = null;
        resource.Dispose();
    }

    /// <summary>The highest descriptor number fd_renumber may create: a guest cannot make the table grow without bound.</summary>
    internal const uint MaxRenumberTarget = ushort.MaxValue;

    /// <summary>
    /// fd_renumber: the handle at <paramref name="from"/> moves to <paramref name="to"/>, closing what was there; as in
    /// wasmtime, <paramref name="to"/> need not be open (programs without dup2 park stdout on a number and bring it back).
    /// </summary>
    internal void Renumber(uint from, uint to)
    {
        var resource = Get(from);
        if (from == to) return;
        if (to > MaxRenumberTarget) throw new WasiError(Errno.BadFd);
        while (_entries.Count <= to) _entries.Add(null);
        _entries[(int)to]?.Dispose();
        _entries[(int)to] = resource;
        _entries[(int)from] = null;
    }

    /// <summary>Every open handle, by descriptor.</summary>
    public IEnumerable<(int Fd, Resource Resource)> Entries()
    {
        for (var fd = 0; fd < _entries.Count; fd++)
        {
            if (_entries[fd] is { } resource) yield return (fd, resource);
        }
    }

    /// <summary>Installs exactly these handles (a restored resource segment), closing any other that is open.</summary>
    public void Replace(IEnumerable<(int Fd, Resource Resource)> resources)
    {
        var kept = resources.ToList();
        foreach (var (_, resource) in Entries())
        {
            if (!kept.Any(k => ReferenceEquals(k.Resource, resource))) resource.Dispose();
        }
        _entries.Clear();
        foreach (var (fd, resource) in kept)
        {
            while (_entries.Count <= fd) _entries.Add(null);
            _entries[fd] = resource;
        }
    }

    public void Dispose()
    {
        foreach (var (_, resource) in Entries()) resource.Dispose();
        _entries.Clear();
    }
}
