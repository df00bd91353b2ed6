namespace Ferry.Wasi.Resources;

/// <summary>How a process is bound to a resource (the seeds' process-to-resource binding).</summary>
public enum ResourceBinding : byte
{
    /// <summary>This very resource: a named file, a listening endpoint.</summary>
    ByIdentifier,
    /// <summary>Any resource with the same contents would do.</summary>
    ByValue,
    /// <summary>Any resource of the kind: a terminal, a clock, a source of randomness.</summary>
    ByType,
}

/// <summary>How a resource is attached to its machine (the seeds' resource-to-machine binding).</summary>
public enum ResourceAttachment : byte
{
    /// <summary>Can move freely: a data file.</summary>
    Unattached,
    /// <summary>Can move at a cost: a directory tree.</summary>
    Fastened,
    /// <summary>Cannot move: a device, a communication endpoint.</summary>
    Fixed,
}

/// <summary>The kinds of handle in the resource table.</summary>
public enum ResourceKind : byte
{
    Stdin,
    Stdout,
    Stderr,
    File,
    Directory,
    SocketListener,
    SocketStream,
}

/// <summary>WASI file types, as fdstat and filestat report them.</summary>
internal enum FileType : byte
{
    Unknown = 0, BlockDevice = 1, CharacterDevice = 2, Directory = 3, RegularFile = 4, SocketDgram = 5, SocketStream = 6,
    SymbolicLink = 7,
}
