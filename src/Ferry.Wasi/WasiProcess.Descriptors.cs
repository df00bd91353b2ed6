using System.Text;
using Ferry.Engine;
using Ferry.Wasi.Resources;

namespace Ferry.Wasi;

public sealed partial class WasiProcess
{
    private const int IovecSize = 8, FdstatSize = 24, FilestatSize = 64, DirentSize = 24;

    private void DefineFileDescriptorFunctions(Linker linker)
    {
        Define(linker, "fd_write", "iiii", FdWrite);
        Define(linker, "fd_read", "iiii", FdRead);
        Define(linker, "fd_pread", "iiiIi", FdPread);
        Define(linker, "fd_pwrite", "iiiIi", FdPwrite);
        Define(linker, "fd_seek", "iIii", FdSeek);
        Define(linker, "fd_tell", "ii", (c, a) =>
        {
            new GuestMemory(c.Memory).WriteU64(a[1], (ulong)Resources.Get<FileResource>((uint)a[0], Errno.SeekPipe).Offset);
            return Errno.Success;
        });
        Define(linker, "fd_close", "i", (_, a) =>
        {
            Resources.Close((uint)a[0]);
            return Errno.Success;
        });
        Define(linker, "fd_sync", "i", (_, a) => Sync((uint)a[0]));
        Define(linker, "fd_datasync", "i", (_, a) => Sync((uint)a[0]));
        Define(linker, "fd_advise", "iIIi", (_, a) =>
        {
            Resources.Get<FileResource>((uint)a[0], Errno.BadFd);
            return (uint)a[3] <= 5 ? Errno.Success : Errno.Invalid;
        });
        Define(linker, "fd_allocate", "iII", (_, a) =>
        {
            var file = Resources.Get<FileResource>((uint)a[0], Errno.BadFd);
            var end = (long)a[1] + (long)a[2];
            if (end < 0) return Errno.Invalid;
            if (!file.Writable) return Errno.BadFd;
            if (RandomAccess.GetLength(file.Handle) < end) RandomAccess.SetLength(file.Handle, end);
            return Errno.Success;
        });
        Define(linker, "fd_fdstat_get", "ii", FdstatGet);
        Define(linker, "fd_fdstat_set_flags", "ii", (_, a) =>
        {
            Resources.Get((uint)a[0]).Flags = (ushort)a[1];
            return Errno.Success;
        });
        Define(linker, "fd_fdstat_set_rights", "iII", (_, a) =>
        {
            var resource = Resources.Get((uint)a[0]);
            if ((a[1] & ~resource.RightsBase) != 0 || (a[2] & ~resource.RightsInheriting) != 0) return Errno.NotCapable;
            resource.RightsBase = a[1];
            resource.RightsInheriting = a[2];
            return Errno.Success;
        });
        Define(linker, "fd_filestat_get", "ii", FilestatGet);
        Define(linker, "fd_filestat_set_size", "iI", (_, a) =>
        {
            var file = Resources.Get<FileResource>((uint)a[0], Errno.BadFd);
            if (!file.Writable) return Errno.BadFd;
            RandomAccess.SetLength(file.Handle, (long)a[1]);
            return Errno.Success;
        });
        Define(linker, "fd_filestat_set_times", "iIIi", (_, a) => SetTimes(HostPathOf((uint)a[0]), a[1], a[2], (uint)a[3]));
        Define(linker, "fd_prestat_get", "ii", (c, a) =>
        {
            var directory = Preopened((uint)a[0]);
            var memory = new GuestMemory(c.Memory);
            memory.Slice(a[1], 8).Clear();
            memory.WriteU32(a[1] + 4, (uint)Encoding.UTF8.GetByteCount(directory.Preopen.GuestPath));
            return Errno.Success;
        });
        Define(linker, "fd_prestat_dir_name", "iii", (c, a) =>
        {
            var name = Encoding.UTF8.GetBytes(Preopened((uint)a[0]).Preopen.GuestPath);
            if ((ulong)name.Length > a[2]) return Errno.NameTooLong;
            name.CopyTo(new GuestMemory(c.Memory).Slice(a[1], (ulong)name.Length));
            return Errno.Success;
        });
        Define(linker, "fd_readdir", "iiiIi", FdReaddir);
        Define(linker, "fd_renumber", "ii", (_, a) =>
        {
            Resources.Renumber((uint)a[0], (uint)a[1]);
            return Errno.Success;
        });
    }

    /// <summary>The buffer that iovec <paramref name="index"/> of <paramref name="vectors"/> names.</summary>
    private static Span<byte> Iovec(GuestMemory memory, ReadOnlySpan<byte> vectors, int index)
    {
        var vector = vectors.Slice(index * IovecSize, IovecSize);
        return memory.Slice(BitConverter.ToUInt32(vector), BitConverter.ToUInt32(vector[4..]));
    }

    /// <summary>The buffer that ciovec <paramref name="index"/> names, for the host to read only.</summary>
    private static ReadOnlySpan<byte> Ciovec(GuestMemory memory, ReadOnlySpan<byte> vectors, int index)
    {
        var vector = vectors.Slice(index * IovecSize, IovecSize);
        return memory.Read(BitConverter.ToUInt32(vector), BitConverter.ToUInt32(vector[4..]));
    }

    private DirectoryResource Preopened(uint fd) =>
        Resources.Get(fd) is DirectoryResource { IsPreopen: true } directory ? directory : throw new WasiError(Errno.BadFd);

    private Errno FdWrite(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var resource = Resources.Get((uint)a[0]);
        var memory = new GuestMemory(context.Memory);
        var vectors = memory.Read(a[1], a[2] * IovecSize);
        ulong written = 0;
        for (var i = 0; i < (int)a[2]; i++)
        {
            var data = Ciovec(memory, vectors, i);
            written += (ulong)resource.Write(data);
        }
        memory.WriteU32(a[3], (uint)written);
        return Errno.Success;
    }

    private Errno FdRead(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var resource = Resources.Get((uint)a[0]);
        var memory = new GuestMemory(context.Memory);
        var vectors = memory.Read(a[1], a[2] * IovecSize);
        ulong total = 0;
        for (var i = 0; i < (int)a[2]; i++)
        {
            var buffer = Iovec(memory, vectors, i);
            var read = resource.Read(buffer);
            total += (ulong)read;
            if (read < buffer.Length) break;
        }
        memory.WriteU32(a[3], (uint)total);
        return Errno.Success;
    }

    private Errno FdPread(HostCallContext context, ReadOnlySpan<ulong> a) => Positioned(context, a, write: false);

    private Errno FdPwrite(HostCallContext context, ReadOnlySpan<ulong> a) => Positioned(context, a, write: true);

    /// <summary>pread and pwrite: a transfer at an explicit offset that leaves the file's own offset alone.</summary>
    private Errno Positioned(HostCallContext context, ReadOnlySpan<ulong> a, bool write)
    {
        var file = Resources.Get<FileResource>((uint)a[0], Errno.SeekPipe);
        if (write ? !file.Writable : !file.Readable) return Errno.BadFd;
        var memory = new GuestMemory(context.Memory);
        var vectors = memory.Read(a[1], a[2] * IovecSize);
        var offset = (long)a[3];
        if (offset < 0) return Errno.Invalid;
        var start = offset;
        for (var i = 0; i < (int)a[2]; i++)
        {
            if (write)
            {
                var data = Ciovec(memory, vectors, i);
                RandomAccess.Write(file.Handle, data, offset);
                offset += data.Length;
                continue;
            }
            var buffer = Iovec(memory, vectors, i);
            var read = RandomAccess.Read(file.Handle, buffer, offset);
            offset += read;
            if (read < buffer.Length) break;
        }
        memory.WriteU32(a[4], (uint)(offset - start));
        return Errno.Success;
    }

    private Errno FdSeek(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var resource = Resources.Get((uint)a[0]);
        if (resource is not FileResource file) return resource is DirectoryResource ? Errno.BadFd : Errno.SeekPipe;
        var delta = (long)a[1];
        var target = (uint)a[2] switch
        {
            0 => delta,
            1 => file.Offset + delta,
            2 => RandomAccess.GetLength(file.Handle) + delta,
            _ => throw new WasiError(Errno.Invalid),
        };
        if (target < 0) return Errno.Invalid;
        var memory = new GuestMemory(context.Memory);
        memory.Slice(a[3], 8);
        file.Offset = target;
        memory.WriteU64(a[3], (ulong)target);
        return Errno.Success;
    }

    private Errno Sync(uint fd)
    {
        if (Resources.Get(fd) is FileResource file && file.Writable) RandomAccess.FlushToDisk(file.Handle);
        return Errno.Success;
    }

    private Errno FdstatGet(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var resource = Resources.Get((uint)a[0]);
        var stat = new GuestMemory(context.Memory).Slice(a[1], FdstatSize);
        stat.Clear();
        stat[0] = (byte)resource.FileType;
        BitConverter.TryWriteBytes(stat[2..], resource.Flags);
        BitConverter.TryWriteBytes(stat[8..], resource.RightsBase);
        BitConverter.TryWriteBytes(stat[16..], resource.RightsInheriting);
        return Errno.Success;
    }

    private string HostPathOf(uint fd) => Resources.Get(fd) switch
    {
        FileResource file => file.HostPath,
        DirectoryResource directory => directory.HostPath,
        _ => throw new WasiError(Errno.BadFd),
    };

    private Errno FilestatGet(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var resource = Resources.Get((uint)a[0]);
        var memory = new GuestMemory(context.Memory);
        switch (resource)
        {
            case FileResource file:
                WriteFilestat(memory, a[1], new FileInfo(file.HostPath), RandomAccess.GetLength(file.Handle));
                break;
            case DirectoryResource directory:
                WriteFilestat(memory, a[1], new DirectoryInfo(directory.HostPath), 4096);
                break;
            default:
                var stat = memory.Slice(a[1], FilestatSize);
                stat.Clear();
                stat[16] = (byte)resource.FileType;
                break;
        }
        return Errno.Success;
    }

    internal static FileType TypeOf(FileSystemInfo info) =>
        info.LinkTarget is not null ? FileType.SymbolicLink
        : info is DirectoryInfo || (info.Attributes & FileAttributes.Directory) != 0 ? FileType.Directory
        : FileType.RegularFile;

    /// <summary>An inode stand-in: stable for a path, so equal paths compare equal.</summary>
    private static ulong InodeOf(string hostPath)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in hostPath) hash = (hash ^ c) * 1099511628211UL;
        return hash;
    }

    private static ulong Nanoseconds(DateTime utc) => (ulong)Math.Max(0, (utc - DateTime.UnixEpoch).Ticks) * 100;

    internal static void WriteFilestat(GuestMemory memory, ulong pointer, FileSystemInfo info, long size)
    {
        if (!info.Exists && info.LinkTarget is null) throw new WasiError(Errno.NoEntry);
        var stat = memory.Slice(pointer, FilestatSize);
        stat.Clear();
        BitConverter.TryWriteBytes(stat[8..], InodeOf(info.FullName));
        stat[16] = (byte)TypeOf(info);
        BitConverter.TryWriteBytes(stat[24..], 1UL);
        BitConverter.TryWriteBytes(stat[32..], (ulong)size);
        BitConverter.TryWriteBytes(stat[40..], Nanoseconds(info.LastAccessTimeUtc));
        BitConverter.TryWriteBytes(stat[48..], Nanoseconds(info.LastWriteTimeUtc));
        BitConverter.TryWriteBytes(stat[56..], Nanoseconds(info.LastWriteTimeUtc));
    }

    private const uint AccessTime = 1, AccessNow = 2, ModifyTime = 4, ModifyNow = 8;

    internal static Errno SetTimes(string hostPath, ulong access, ulong modify, uint flags)
    {
        if ((flags & AccessTime) != 0 && (flags & AccessNow) != 0 || (flags & ModifyTime) != 0 && (flags & ModifyNow) != 0) return Errno.Invalid;
        static DateTime At(ulong nanoseconds) => DateTime.UnixEpoch.AddTicks((long)(nanoseconds / 100));
        if ((flags & (AccessTime | AccessNow)) != 0) File.SetLastAccessTimeUtc(hostPath, (flags & AccessNow) != 0 ? DateTime.UtcNow : At(access));
        if ((flags & (ModifyTime | ModifyNow)) != 0) File.SetLastWriteTimeUtc(hostPath, (flags & ModifyNow) != 0 ? DateTime.UtcNow : At(modify));
        return Errno.Success;
    }

    /// <summary>Entries "." and "..", then the directory's names in ordinal order; the cookie is the next entry's index.</summary>
    private Errno FdReaddir(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var directory = Resources.Get<DirectoryResource>((uint)a[0], Errno.NotDirectory);
        var names = Directory.EnumerateFileSystemEntries(directory.HostPath).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        names.InsertRange(0, [".", ".."]);
        var memory = new GuestMemory(context.Memory);
        var buffer = memory.Slice(a[1], a[2]);
        var used = 0;
        Span<byte> entry = stackalloc byte[DirentSize];
        for (var index = (int)Math.Min(a[3], int.MaxValue); index < names.Count && used < buffer.Length; index++)
        {
            var name = Encoding.UTF8.GetBytes(names[index]!);
            var host = Path.Combine(directory.HostPath, names[index]!);
            entry.Clear();
            BitConverter.TryWriteBytes(entry, (ulong)index + 1);
            BitConverter.TryWriteBytes(entry[8..], InodeOf(Path.GetFullPath(host)));
            BitConverter.TryWriteBytes(entry[16..], (uint)name.Length);
            entry[20] = index < 2 ? (byte)FileType.Directory : (byte)TypeOf(new FileInfo(host));
            var take = Math.Min(DirentSize, buffer.Length - used);
            entry[..take].CopyTo(buffer[used..]);
            used += take;
            take = Math.Min(name.Length, buffer.Length - used);
            name.AsSpan(0, take).CopyTo(buffer[used..]);
            used += take;
        }
        memory.WriteU32(a[4], (uint)used);
        return Errno.Success;
    }
}
