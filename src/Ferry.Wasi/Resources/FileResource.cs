using Microsoft.Win32.SafeHandles;

namespace Ferry.Wasi.Resources;

/// <summary>
/// An open regular file: bound by identifier, unattached (its contents can move with the process); once its name is
/// gone (<paramref name="unlinked"/>) only its contents identify it, so a snapshot carries them by value.
/// </summary>
public sealed class FileResource(SafeFileHandle handle, string hostPath, bool readable, bool writable, bool unlinked = false) : Resource
{
    public const ushort AppendFlag = 1;

    public override ResourceKind Kind => ResourceKind.File;
    public override ResourceBinding Binding => Unlinked ? ResourceBinding.ByValue : ResourceBinding.ByIdentifier;
    public override ResourceAttachment Attachment => ResourceAttachment.Unattached;
    public override string? Location => HostPath;
    internal override FileType FileType => FileType.RegularFile;

    /// <summary>Where the file is now: follows the guest's renames of it (path_rename); once unlinked, where it was.</summary>
    public string HostPath { get; internal set; } = hostPath;
    /// <summary>The guest removed or replaced the file's name while it was open: no path names it any more.</summary>
    public bool Unlinked { get; internal set; } = unlinked;
    public SafeFileHandle Handle { get; } = handle;
    public bool Readable { get; } = readable;
    public bool Writable { get; } = writable;
    /// <summary>The file offset that read, write and seek move.</summary>
    public long Offset { get; set; }

    internal override int Read(Span<byte> buffer)
    {
        if (!Readable) throw new WasiError(Errno.BadFd);
        var count = RandomAccess.Read(Handle, buffer, Offset);
        Offset += count;
        return count;
    }

    internal override int Write(ReadOnlySpan<byte> data)
    {
        if (!Writable) throw new WasiError(Errno.BadFd);
        if ((Flags & AppendFlag) != 0) Offset = RandomAccess.GetLength(Handle);
        RandomAccess.Write(Handle, data, Offset);
        Offset += data.Length;
        return data.Length;
    }

    public override void Dispose()
    {
        Handle.Dispose();
        base.Dispose();
    }
}
