namespace Ferry.Wasi.Resources;

/// <summary>
/// One handle of the resource segment. Besides what the host needs to serve it, each records what a
/// migration needs to move it: what it is, where on the host, its binding and attachment.
/// </summary>
public abstract class Resource : IDisposable
{
    public abstract ResourceKind Kind { get; }
    public abstract ResourceBinding Binding { get; }
    public abstract ResourceAttachment Attachment { get; }
    /// <summary>The host path or network endpoint, where there is one.</summary>
    public abstract string? Location { get; }
    /// <summary>WASI fdflags (append, dsync, nonblock, rsync, sync).</summary>
    public ushort Flags { get; set; }
    public ulong RightsBase { get; set; } = ulong.MaxValue;
    public ulong RightsInheriting { get; set; } = ulong.MaxValue;
    internal abstract FileType FileType { get; }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>Reads into <paramref name="buffer"/>; 0 means end of stream.</summary>
    internal virtual int Read(Span<byte> buffer) => throw new WasiError(Errno.BadFd);

    internal virtual int Write(ReadOnlySpan<byte> data) => throw new WasiError(Errno.BadFd);
}
