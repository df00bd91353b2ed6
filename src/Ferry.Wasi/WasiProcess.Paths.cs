using System.Runtime.InteropServices;
using Ferry.Engine;
using Ferry.Wasi.Resources;
using Ferry.Wasi.Sandbox;

namespace Ferry.Wasi;

public sealed partial class WasiProcess
{
    private const uint LookupFollowSymlinks = 1;
    private const uint OpenCreate = 1, OpenDirectory = 2, OpenExclusive = 4, OpenTruncate = 8;
    private const ulong RightFdRead = 1UL << 1, RightFdWrite = 1UL << 6;

    private void DefinePathFunctions(Linker linker)
    {
        Define(linker, "path_open", "iiiiiIIii", PathOpen);
        Define(linker, "path_create_directory", "iii", (c, a) =>
        {
            var target = Resolve(c, a[0], a[1], a[2], follow: false);
            if (Exists(target.HostPath)) return Errno.Exist;
            RequireParent(target.HostPath);
            Directory.CreateDirectory(target.HostPath);
            return Errno.Success;
        });
        Define(linker, "path_remove_directory", "iii", (c, a) =>
        {
            var target = Resolve(c, a[0], a[1], a[2], follow: false);
            if (target.Components.Count == 0) return Errno.Busy;
            var info = new DirectoryInfo(target.HostPath);
            if (!Exists(target.HostPath)) return Errno.NoEntry;
            if (info.LinkTarget is not null || !info.Exists) return Errno.NotDirectory;
            if (info.EnumerateFileSystemInfos().Any()) return Errno.NotEmpty;
            info.Delete();
            return Errno.Success;
        });
        Define(linker, "path_unlink_file", "iii", (c, a) =>
        {
            var target = Resolve(c, a[0], a[1], a[2], follow: false);
            var info = new FileInfo(target.HostPath);
            if (info.LinkTarget is null)
            {
                if (Directory.Exists(target.HostPath)) return Errno.IsDirectory;
                if (!info.Exists) return Errno.NoEntry;
            }
            info.Delete();
            OpenFilesUnlinked(target.HostPath);
            return Errno.Success;
        });
        Define(linker, "path_rename", "iiiiii", PathRename);
        Define(linker, "path_link", "iiiiiii", (c, a) =>
        {
            var source = Resolve(c, a[0], a[2], a[3], follow: ((uint)a[1] & LookupFollowSymlinks) != 0);
            var target = Resolve(c, a[4], a[5], a[6], follow: false);
            if (!Exists(source.HostPath)) return Errno.NoEntry;
            if (Directory.Exists(source.HostPath)) return Errno.Permission;
            if (Exists(target.HostPath)) return Errno.Exist;
            RequireParent(target.HostPath);
            return link(source.HostPath, target.HostPath) == 0 ? Errno.Success : Errno.Io;
        });
        Define(linker, "path_symlink", "iiiii", (c, a) =>
        {
            var text = new GuestMemory(c.Memory).ReadString(a[0], a[1]);
            var target = Resolve(c, a[2], a[3], a[4], follow: false);
            // A link pointing outside could never be followed inside the sandbox; refuse to create it at all.
            if (text.Length == 0 || text[0] == '/') return Errno.NotCapable;
            if (Exists(target.HostPath)) return Errno.Exist;
            RequireParent(target.HostPath);
            File.CreateSymbolicLink(target.HostPath, text);
            return Errno.Success;
        });
        Define(linker, "path_readlink", "iiiiii", (c, a) =>
        {
            var target = Resolve(c, a[0], a[1], a[2], follow: false);
            if (new FileInfo(target.HostPath).LinkTarget is not { } text) return Exists(target.HostPath) ? Errno.Invalid : Errno.NoEntry;
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            var memory = new GuestMemory(c.Memory);
            var length = (int)Math.Min((ulong)bytes.Length, a[4]);
            bytes.AsSpan(0, length).CopyTo(memory.Slice(a[3], (ulong)length));
            memory.WriteU32(a[5], (uint)length);
            return Errno.Success;
        });
        Define(linker, "path_filestat_get", "iiiii", (c, a) =>
        {
            var target = Resolve(c, a[0], a[2], a[3], follow: ((uint)a[1] & LookupFollowSymlinks) != 0);
            FileSystemInfo info = Directory.Exists(target.HostPath) ? new DirectoryInfo(target.HostPath) : new FileInfo(target.HostPath);
            var size = info switch
            {
                _ when info.LinkTarget is { } link => link.Length,
                FileInfo { Exists: true } file => file.Length,
                _ => 4096,
            };
            WriteFilestat(new GuestMemory(c.Memory), a[4], info, size);
            return Errno.Success;
        });
        Define(linker, "path_filestat_set_times", "iiiiIIi", (c, a) =>
        {
            var target = Resolve(c, a[0], a[2], a[3], follow: ((uint)a[1] & LookupFollowSymlinks) != 0);
            if (!Exists(target.HostPath)) return Errno.NoEntry;
            return SetTimes(target.HostPath, a[4], a[5], (uint)a[6]);
        });
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int link(string existing, string created);

    private PathResolver.Resolved Resolve(HostCallContext context, ulong fd, ulong path, ulong length, bool follow)
    {
        var directory = Resources.Get<DirectoryResource>((uint)fd, Resources.TryGet((uint)fd, out _) ? Errno.NotDirectory : Errno.BadFd);
        return PathResolver.Resolve(directory, new GuestMemory(context.Memory).ReadString(path, length), follow);
    }

    /// <summary>Whether anything, even a dangling symbolic link, exists at the path.</summary>
    private static bool Exists(string hostPath) => Path.Exists(hostPath) || new FileInfo(hostPath).LinkTarget is not null;

    private static void RequireParent(string hostPath)
    {
        if (!Directory.Exists(Path.GetDirectoryName(hostPath))) throw new WasiError(Errno.NoEntry);
    }

    private Errno PathOpen(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var lookup = (uint)a[1];
        var openFlags = (uint)a[4];
        var rights = a[5];
        var target = Resolve(context, a[0], a[2], a[3], follow: (lookup & LookupFollowSymlinks) != 0);
        var host = target.HostPath;
        var memory = new GuestMemory(context.Memory);
        memory.Slice(a[8], 4);
        if (new FileInfo(host).LinkTarget is not null) return Errno.Loop;

        Resource resource;
        if (Directory.Exists(host))
        {
            if ((openFlags & OpenCreate) != 0 && (openFlags & OpenExclusive) != 0) return Errno.Exist;
            if ((openFlags & OpenTruncate) != 0 || (rights & RightFdWrite) != 0 && (openFlags & OpenDirectory) == 0) return Errno.IsDirectory;
            resource = new DirectoryResource(target.Preopen, target.Components);
        }
        else
        {
            if ((openFlags & OpenDirectory) != 0) return File.Exists(host) ? Errno.NotDirectory : Errno.NoEntry;
            var exists = File.Exists(host);
            if (exists && (openFlags & OpenCreate) != 0 && (openFlags & OpenExclusive) != 0) return Errno.Exist;
            if (!exists && (openFlags & OpenCreate) == 0) return Errno.NoEntry;
            RequireParent(host);
            var write = (rights & RightFdWrite) != 0 || (openFlags & OpenTruncate) != 0;
            var read = (rights & RightFdRead) != 0 || !write;
            var mode = (openFlags & OpenCreate) != 0
                ? (openFlags & OpenExclusive) != 0 ? FileMode.CreateNew : (openFlags & OpenTruncate) != 0 ? FileMode.Create : FileMode.OpenOrCreate
                : (openFlags & OpenTruncate) != 0 ? FileMode.Truncate : FileMode.Open;
            var access = write ? read ? FileAccess.ReadWrite : FileAccess.Write : FileAccess.Read;
            var handle = File.OpenHandle(host, mode, access, FileShare.ReadWrite | FileShare.Delete);
            resource = new FileResource(handle, host, read, write);
        }
        resource.Flags = (ushort)a[7];
        resource.RightsBase = rights;
        resource.RightsInheriting = a[6];
        memory.WriteU32(a[8], (uint)Resources.Add(resource));
        return Errno.Success;
    }

    private Errno PathRename(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var source = Resolve(context, a[0], a[1], a[2], follow: false);
        var target = Resolve(context, a[3], a[4], a[5], follow: false);
        if (!Exists(source.HostPath)) return Errno.NoEntry;
        if (source.Components.Count == 0 || target.Components.Count == 0) return Errno.Busy;
        // A rename onto itself does nothing (POSIX), and must not take the name from its own open descriptors.
        if (string.Equals(source.HostPath, target.HostPath, StringComparison.Ordinal)) return Errno.Success;
        RequireParent(target.HostPath);
        var sourceIsDirectory = Directory.Exists(source.HostPath) && new FileInfo(source.HostPath).LinkTarget is null;
        if (sourceIsDirectory)
        {
            if (File.Exists(target.HostPath)) return Errno.NotDirectory;
            if (Directory.Exists(target.HostPath))
            {
                if (Directory.EnumerateFileSystemEntries(target.HostPath).Any()) return Errno.NotEmpty;
                Directory.Delete(target.HostPath);
            }
            Directory.Move(source.HostPath, target.HostPath);
            OpenFilesMoved(source.HostPath + Path.DirectorySeparatorChar, target.HostPath + Path.DirectorySeparatorChar, prefix: true);
        }
        else
        {
            if (Directory.Exists(target.HostPath) && new FileInfo(target.HostPath).LinkTarget is null) return Errno.IsDirectory;
            File.Move(source.HostPath, target.HostPath, overwrite: true);
            OpenFilesUnlinked(target.HostPath);
            OpenFilesMoved(source.HostPath, target.HostPath, prefix: false);
        }
        return Errno.Success;
    }

    /// <summary>An open file whose name the guest removed (or replaced) no longer has a path that a restore could reopen.</summary>
    private void OpenFilesUnlinked(string hostPath)
    {
        foreach (var (_, resource) in Resources.Entries())
        {
            if (resource is FileResource file && string.Equals(file.HostPath, hostPath, StringComparison.Ordinal)) file.Unlinked = true;
        }
    }

    /// <summary>An open file the guest renamed (or that lies under a directory it renamed) is now found at the new path.</summary>
    private void OpenFilesMoved(string from, string to, bool prefix)
    {
        foreach (var (_, resource) in Resources.Entries())
        {
            if (resource is not FileResource file || file.Unlinked) continue;
            if (!prefix && string.Equals(file.HostPath, from, StringComparison.Ordinal)) file.HostPath = to;
            else if (prefix && file.HostPath.StartsWith(from, StringComparison.Ordinal)) file.HostPath = to + file.HostPath[from.Length..];
        }
    }
}
