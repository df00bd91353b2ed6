using Ferry.Engine;
using Ferry.Wasi.Resources;
using Ferry.Wasi.Sandbox;

namespace Ferry.Mobility.Snapshots;

/// <summary>What the header section says.</summary>
public sealed record SnapshotHeader(string ModuleHash, bool CodeEmbedded, long InstructionsExecuted, uint MemoryPages, long CapturedAtUnixMilliseconds);

/// <summary>One open descriptor of the resource segment, with what is needed to re-establish it.</summary>
public sealed record DescriptorRecord(
    int Fd,
    ResourceKind Kind,
    ResourceBinding Binding,
    ResourceAttachment Attachment,
    ushort Flags,
    ulong RightsBase,
    ulong RightsInheriting,
    string? HostPath = null,
    bool Readable = false,
    bool Writable = false,
    long Offset = 0,
    int PreopenIndex = -1,
    string[]? Components = null,
    int ListenerIndex = -1,
    CopiedFile? Copy = null);

/// <summary>
/// A file carried by value (its name was gone at capture): <paramref name="Length"/> bytes, of which <paramref name="Data"/>
/// is the start and zeros the rest (all of it for a file the process could read; none for one it could only write).
/// </summary>
public sealed record CopiedFile(long Length, byte[] Data);

/// <summary>The resource segment: what the process was granted and every handle it holds.</summary>
public sealed record ResourceSegment(
    List<string> Arguments,
    List<KeyValuePair<string, string>> Environment,
    List<Preopen> Preopens,
    List<string> Listeners,
    List<DescriptorRecord> Descriptors,
    long MonotonicNanoseconds);

/// <summary>Bytes already written to stdout and stderr: the sequence numbers the restored process continues from.</summary>
public readonly record struct OutputSequence(long Stdout, long Stderr);

/// <summary>Everything in a snapshot but the memory frames, which stream separately.</summary>
public sealed record Snapshot(
    SnapshotHeader Header,
    ReadOnlyMemory<byte> Code,
    ResourceSegment Resources,
    OutputSequence Output,
    InstanceState Instance,
    ExecutionState Execution);
