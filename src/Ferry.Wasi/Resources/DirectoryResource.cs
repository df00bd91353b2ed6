namespace Ferry.Wasi.Resources;

/// <summary>
/// A directory handle: a preopen or a directory opened beneath one. It is a position inside its preopen's
/// tree (the preopen root plus components), never an OS handle, so moving the directory on the host cannot
/// lead the guest outside the tree. Bound by identifier, fastened (a tree moves only at a cost).
/// </summary>
public sealed class DirectoryResource(Sandbox.Preopen preopen, IReadOnlyList<string> components) : Resource
{
    public override ResourceKind Kind => ResourceKind.Directory;
    public override ResourceBinding Binding => ResourceBinding.ByIdentifier;
    public override ResourceAttachment Attachment => ResourceAttachment.Fastened;
    public override string? Location => HostPath;
    internal override FileType FileType => FileType.Directory;

    public Sandbox.Preopen Preopen { get; } = preopen;
    /// <summary>Path components from the preopen root to this directory.</summary>
    public IReadOnlyList<string> Components { get; } = components;
    /// <summary>True for the preopen itself, which fd_prestat_get describes.</summary>
    public bool IsPreopen => Components.Count == 0;
    public string HostPath => Components.Count == 0 ? Preopen.HostPath : Path.Combine([Preopen.HostPath, .. Components]);
}
