using System.Net;
using Ferry.Engine;
using Ferry.Mobility.Snapshots;
using Ferry.Wasi;
using Ferry.Wasi.Resources;
using Ferry.Wasm;

namespace Ferry.Mobility;

/// <summary>A restore could not re-establish the process: a resource it holds is gone, or the state does not fit the module.</summary>
public sealed class RestoreException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The process holds a resource no snapshot can carry (a connected socket, a file whose name is gone): it stays where it is.</summary>
public sealed class CaptureRefusedException(string message) : InvalidOperationException(message);

/// <summary>A process brought back from a snapshot, stopped where it was captured; <see cref="Execution"/>.Run continues it.</summary>
public sealed class RestoredProcess(Module module, Store store, Instance instance, Execution execution, WasiProcess wasi) : IDisposable
{
    public Module Module { get; } = module;
    public Store Store { get; } = store;
    public Instance Instance { get; } = instance;
    public Execution Execution { get; } = execution;
    public WasiProcess Wasi { get; } = wasi;

    public void Dispose() => Wasi.Dispose();
}

/// <summary>What a live-migration target holds before the process image arrives: the loaded module, its store, and the memory received so far.</summary>
/// <summary>
/// What a migration target built before the image came: the module, the store, the memory the frames went into, and
/// the instance prepared around it (<see cref="Linker.PrepareForRestore"/>), if the module allowed one.
/// </summary>
public sealed record ReceivedSegments(Module Module, Store Store, Ferry.Engine.Memory.LinearMemory? Memory, Instance? Instance = null);

/// <summary>Captures a whole WASI process (code, execution and resource segments) into a snapshot and restores it.</summary>
public static class ProcessSnapshot
{
    /// <summary>Writes the process to <paramref name="stream"/>. It must be paused, out of fuel, or not yet started.</summary>
    /// <remarks>With <paramref name="memoryFrames"/> false only the page count of memory is written (live migration moves frames itself).</remarks>
    public static SnapshotHeader Capture(Stream stream, Module module, Instance instance, Execution execution, WasiProcess wasi, bool embedCode = true, bool memoryFrames = true)
    {
        // Frames still at a post-copy source read as zeros here: a snapshot now would hold them so, silently.
        if (instance.Memory is { PresenceTracking: true }) throw new CaptureRefusedException("its memory is still arriving from a post-copy migration; it can be captured once every frame is in");
        var state = execution.Capture();
        var header = new SnapshotHeader(module.Hash, embedCode, state.InstructionsExecuted, instance.Memory?.Pages ?? 0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var snapshot = new Snapshot(header, module.Bytes, Resources(wasi), Output(wasi), InstanceState.Capture(instance), state);
        SnapshotWriter.Write(stream, snapshot, instance.Memory, memoryFrames);
        return header;
    }

    private static OutputSequence Output(WasiProcess wasi)
    {
        long Sequence(ResourceKind kind) =>
            wasi.Resources.Entries().Select(e => e.Resource).OfType<StdioResource>().Where(s => s.Kind == kind).Sum(s => s.Sequence);
        return new OutputSequence(Sequence(ResourceKind.Stdout), Sequence(ResourceKind.Stderr));
    }

    private static ResourceSegment Resources(WasiProcess wasi)
    {
        var configuration = wasi.Configuration;
        var descriptors = new List<DescriptorRecord>();
        var copiedBytes = 0L;
        var copiedFrom = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (fd, resource) in wasi.Resources.Entries())
        {
            if (resource is FileResource { Unlinked: true } unlinked && !copiedFrom.TryAdd(unlinked.HostPath, fd))
            {
                // Copies of one file would no longer share their writes; two files once at one name cannot be told apart without the inode.
                throw new CaptureRefusedException(
                    $"descriptors {copiedFrom[unlinked.HostPath]} and {fd} hold files whose name {unlinked.HostPath} was removed; they may be one file, which two copies would split, so the process cannot be captured while it holds both");
            }
            var record = new DescriptorRecord(fd, resource.Kind, resource.Binding, resource.Attachment, resource.Flags, resource.RightsBase, resource.RightsInheriting);
            descriptors.Add(resource switch
            {
                StdioResource => record,
                FileResource file => record with
                {
                    HostPath = file.HostPath, Readable = file.Readable, Writable = file.Writable, Offset = file.Offset,
                    Copy = file.Unlinked ? CopyOf(fd, file, ref copiedBytes) : null,
                },
                DirectoryResource directory => record with { PreopenIndex = configuration.Preopens.IndexOf(directory.Preopen), Components = [.. directory.Components] },
                ListenerResource listener => record with { ListenerIndex = listener.Index },
                _ => throw new CaptureRefusedException(
                    $"descriptor {fd} is a connected socket ({resource.Location}), fixed to this machine: the process cannot be captured while it holds one"),
            });
        }
        return new ResourceSegment(
            configuration.Arguments,
            configuration.Environment,
            configuration.Preopens,
            [.. configuration.Listeners.Select(l => l.ToString())],
            descriptors,
            wasi.MonotonicNanoseconds);
    }

    /// <summary>
    /// The contents of a file whose name is gone (by value: no path reopens it): all of them if the process may read it; of
    /// one it may only write, the length alone, since nothing it can do shows it the bytes (and the handle cannot read them).
    /// </summary>
    private static CopiedFile CopyOf(int fd, FileResource file, ref long copiedBytes)
    {
        var length = RandomAccess.GetLength(file.Handle);
        copiedBytes += length;
        if (copiedBytes > SnapshotLayout.MaxCopiedFileBytes)
            throw new CaptureRefusedException($"descriptor {fd} is a file of {length:N0} bytes whose name was removed: a snapshot carries such files by value, {SnapshotLayout.MaxCopiedFileBytes:N0} bytes at most in all");
        if (!file.Readable) return new CopiedFile(length, []);
        var data = new byte[length];
        for (var at = 0; at < data.Length;)
        {
            var read = RandomAccess.Read(file.Handle, data.AsSpan(at), at);
            if (read == 0) throw new CaptureRefusedException($"descriptor {fd}: the file whose name was removed shrank while it was copied");
            at += read;
        }
        return new CopiedFile(length, data);
    }

    /// <summary>
    /// Reads a snapshot and rebuilds the process: module (embedded, or found by hash), resources re-established
    /// (files reopened at their offsets, directories, listeners rebound), instance and memory, execution. Nothing
    /// of the guest runs; everything is checked before this returns, and on any failure nothing is kept.
    /// </summary>
    /// <param name="received">
    /// For live migration: the module, already loaded, and the linear memory received ahead of the snapshot (created
    /// by the store for the module's memory type); the snapshot's frames, if any, go on top of what it holds.
    /// </param>
    /// <param name="refuseResources">
    /// The host's sandbox policy: given the resource segment, why this host will not grant it (a directory it does not
    /// allow, a listening socket), or null. Asked before any file, directory or socket is opened; a refusal is a <see cref="RestoreException"/>.
    /// </param>
    public static RestoredProcess Restore(Stream stream, Stream stdin, Stream stdout, Stream stderr, Func<string, byte[]?> moduleByHash, bool suspendInsteadOfBlocking = false,
        ReceivedSegments? received = null, Func<ResourceSegment, string?>? refuseResources = null)
    {
        var reader = new SnapshotReader(stream);
        var snapshot = reader.ReadState(moduleByHash, received?.Module.Hash);
        if (refuseResources?.Invoke(snapshot.Resources) is { } refusal) throw new RestoreException($"this host will not grant the process's resources: {refusal}");
        Module module;
        if (received is not null && received.Module.Hash == snapshot.Header.ModuleHash)
        {
            module = received.Module;
        }
        else
        {
            try
            {
                module = Module.Load(snapshot.Code);
            }
            catch (WasmException e)
            {
                throw new SnapshotFormatException($"the snapshot's module does not load: {e.Message}");
            }
        }

        var resources = snapshot.Resources;
        var configuration = new WasiConfiguration
        {
            Arguments = resources.Arguments,
            Environment = resources.Environment,
            Preopens = resources.Preopens,
            Listeners = [.. resources.Listeners.Select(Endpoint)],
            Stdin = stdin,
            Stdout = stdout,
            Stderr = stderr,
            SuspendInsteadOfBlocking = suspendInsteadOfBlocking,
        };
        foreach (var preopen in configuration.Preopens)
        {
            if (!Directory.Exists(preopen.HostPath)) throw new RestoreException($"the preopened directory {preopen.HostPath} no longer exists");
        }
        WasiProcess wasi;
        try
        {
            wasi = new WasiProcess(configuration);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new RestoreException($"a listening socket cannot be rebound: {e.Message}", e);
        }
        try
        {
            wasi.Resources.Replace(Reestablish(resources, snapshot.Output, wasi, configuration));
            var store = received?.Store ?? new Store();
            var linker = new Linker();
            wasi.Define(linker);
            Instance instance;
            if (received?.Instance is { } prepared && prepared.Module == module)
            {
                linker.BindImports(prepared);
                instance = prepared;
            }
            else
            {
                instance = received?.Memory is { } memory ? linker.InstantiateForRestore(store, module, memory) : linker.InstantiateForRestore(store, module);
            }
            if (snapshot.Header.MemoryPages > 0 && instance.Memory is null) throw new SnapshotFormatException("the snapshot has memory but its module has none");
            reader.ReadMemory(instance.Memory, snapshot.Header.MemoryPages, keepContents: received?.Memory is not null);
            snapshot.Instance.RestoreInto(instance);
            var execution = Execution.Restore(instance, snapshot.Execution);
            wasi.ContinueMonotonicClockFrom(resources.MonotonicNanoseconds);
            return new RestoredProcess(module, store, instance, execution, wasi);
        }
        catch (Exception e) when (e is InvalidExecutionStateException or LinkException)
        {
            wasi.Dispose();
            throw new SnapshotFormatException($"the snapshot does not fit its module: {e.Message}");
        }
        catch
        {
            wasi.Dispose();
            throw;
        }
    }

    private static IPEndPoint Endpoint(string text) =>
        IPEndPoint.TryParse(text, out var endpoint) ? endpoint : throw new SnapshotFormatException($"Resources section: '{text}' is not an endpoint");

    private static IEnumerable<(int, Resource)> Reestablish(ResourceSegment resources, OutputSequence output, WasiProcess wasi, WasiConfiguration configuration)
    {
        var listeners = wasi.Resources.Entries().Select(e => e.Resource).OfType<ListenerResource>().ToList();
        var result = new List<(int, Resource)>();
        try
        {
            Reestablish(resources, output, configuration, listeners, result);
        }
        catch
        {
            // Files opened (or copies made) before the failure are closed now, not whenever a finalizer runs.
            foreach (var (_, resource) in result) if (resource is FileResource file) file.Dispose();
            throw;
        }
        return result;
    }

    private static void Reestablish(ResourceSegment resources, OutputSequence output, WasiConfiguration configuration, List<ListenerResource> listeners, List<(int, Resource)> result)
    {
        foreach (var d in resources.Descriptors)
        {
            Resource resource = d.Kind switch
            {
                ResourceKind.Stdin => new StdioResource(ResourceKind.Stdin, configuration.Stdin),
                ResourceKind.Stdout => new StdioResource(ResourceKind.Stdout, configuration.Stdout, output.Stdout),
                ResourceKind.Stderr => new StdioResource(ResourceKind.Stderr, configuration.Stderr, output.Stderr),
                ResourceKind.File => d.Copy is { } copy ? Recreate(d, copy) : Reopen(d),
                ResourceKind.Directory => new DirectoryResource(configuration.Preopens[d.PreopenIndex], d.Components ?? []),
                ResourceKind.SocketListener => listeners[d.ListenerIndex],
                _ => throw new SnapshotFormatException($"descriptor {d.Fd}: a connected socket cannot be restored"),
            };
            resource.Flags = d.Flags;
            resource.RightsBase = d.RightsBase;
            resource.RightsInheriting = d.RightsInheriting;
            result.Add((d.Fd, resource));
        }
    }

    /// <summary>
    /// A file carried by value comes back as a new file with no name, as it was: created empty in the host's temporary
    /// directory and removed from it at once (before its contents are written, so no one else can read them by name).
    /// </summary>
    private static FileResource Recreate(DescriptorRecord d, CopiedFile copy)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ferry-copied-{Guid.NewGuid():N}");
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RestoreException($"descriptor {d.Fd}: no file can be created in {Path.GetTempPath()} for the copy of {d.HostPath}: {e.Message}", e);
        }
        try
        {
            File.Delete(path);
            RandomAccess.Write(handle, copy.Data, 0);
            RandomAccess.SetLength(handle, copy.Length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            handle.Dispose();
            throw new RestoreException($"descriptor {d.Fd}: the copy of {d.HostPath} ({copy.Length:N0} bytes) cannot be written to {Path.GetTempPath()}: {e.Message}", e);
        }
        return new FileResource(handle, d.HostPath!, d.Readable, d.Writable, unlinked: true) { Offset = d.Offset };
    }

    /// <summary>An open file is bound by identifier: the same path is reopened, at the same offset, with the same access.</summary>
    private static FileResource Reopen(DescriptorRecord d)
    {
        if (!File.Exists(d.HostPath)) throw new RestoreException($"descriptor {d.Fd}: the file {d.HostPath} no longer exists");
        var access = d.Writable ? d.Readable ? FileAccess.ReadWrite : FileAccess.Write : FileAccess.Read;
        var handle = File.OpenHandle(d.HostPath!, FileMode.Open, access, FileShare.ReadWrite | FileShare.Delete);
        return new FileResource(handle, d.HostPath!, d.Readable, d.Writable) { Offset = d.Offset };
    }
}
