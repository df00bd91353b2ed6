using System.Buffers.Binary;
using Ferry.Engine;
using Ferry.Engine.Memory;
using Ferry.Wasi.Resources;
using Ferry.Wasi.Sandbox;

namespace Ferry.Mobility.Snapshots;

/// <summary>
/// Reads a snapshot in two steps: <see cref="ReadState"/> checks and decodes every section before memory,
/// then <see cref="ReadMemory"/> streams the frames into the restored instance's memory and checks the end.
/// Every problem is a <see cref="SnapshotFormatException"/>; lengths are checked before anything is allocated.
/// </summary>
public sealed class SnapshotReader(Stream stream)
{
    private long _position;

    /// <summary>The format version of the snapshot, once its start is read.</summary>
    public ushort Version { get; private set; }

    /// <summary>The sections read so far, with their payload lengths.</summary>
    public List<(SectionType Type, long Length)> Sections { get; } = [];

    private void ReadExactly(Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new SnapshotFormatException($"the snapshot is truncated at byte {_position}");
        }
        _position += buffer.Length;
    }

    private (SectionType Type, long Length) SectionHeader()
    {
        Span<byte> header = stackalloc byte[SnapshotLayout.SectionHeaderSize];
        var at = _position;
        ReadExactly(header);
        var type = (SectionType)header[0];
        if (header[1] != 0 || header[2] != 0 || header[3] != 0) throw new SnapshotFormatException($"section at byte {at}: reserved bytes are not zero");
        var length = BinaryPrimitives.ReadInt64LittleEndian(header[4..]);
        var max = SnapshotLayout.MaxPayload(type);
        if (max < 0) throw new SnapshotFormatException($"section at byte {at}: unknown section type {header[0]}");
        if (length < 0 || length > max) throw new SnapshotFormatException($"{type} section at byte {at}: length {length} exceeds the limit of {max}");
        Sections.Add((type, length));
        return (type, length);
    }

    private uint ReadCrc()
    {
        Span<byte> crc = stackalloc byte[4];
        ReadExactly(crc);
        return BinaryPrimitives.ReadUInt32LittleEndian(crc);
    }

    /// <summary>Reads one whole section of the expected type (or, if optional and absent, returns null with the header consumed).</summary>
    private byte[] Section(SectionType expected, ref (SectionType Type, long Length)? lookahead)
    {
        var (type, length) = lookahead ?? SectionHeader();
        lookahead = null;
        if (type != expected) throw new SnapshotFormatException($"expected the {expected} section at byte {_position - SnapshotLayout.SectionHeaderSize}, found {type}");
        var payload = new byte[length];
        ReadExactly(payload);
        if (ReadCrc() != Crc32C.Of(payload)) throw new SnapshotFormatException($"the {type} section fails its checksum");
        return payload;
    }

    /// <summary>Reads and checks the start of a snapshot and its Header section: what <see cref="ReadState"/> reads first.</summary>
    public SnapshotHeader ReadHeader()
    {
        Span<byte> start = stackalloc byte[12];
        ReadExactly(start);
        if (!start[..8].SequenceEqual(SnapshotLayout.Magic)) throw new SnapshotFormatException("not a Ferry snapshot (bad magic)");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(start[8..]);
        if (version is < SnapshotLayout.OldestReadableVersion or > SnapshotLayout.Version)
            throw new SnapshotFormatException($"snapshot format version {version}; this Ferry reads versions {SnapshotLayout.OldestReadableVersion} to {SnapshotLayout.Version}");
        Version = version;
        if (start[10] != 0 || start[11] != 0) throw new SnapshotFormatException("reserved header bytes are not zero");
        (SectionType, long)? lookahead = null;
        return ParseHeader(Section(SectionType.Header, ref lookahead));
    }

    /// <summary>
    /// Reads and checks everything before the memory section. <paramref name="moduleByHash"/> supplies the module when the
    /// snapshot does not embed it. When the header names <paramref name="heldModuleHash"/>, the caller already holds that
    /// module, loaded and hashed: its code is neither fetched nor hashed again, and <see cref="Snapshot.Code"/> is empty.
    /// </summary>
    public Snapshot ReadState(Func<string, byte[]?> moduleByHash, string? heldModuleHash = null)
    {
        var header = ReadHeader();
        (SectionType, long)? lookahead = null;
        byte[] code;
        if (header.ModuleHash == heldModuleHash)
        {
            // Hashing the module again would cost about 1 ms per MiB of code, inside a migration's downtime.
            if (header.CodeEmbedded) Section(SectionType.Code, ref lookahead);
            code = [];
        }
        else
        {
            code = header.CodeEmbedded
                ? Section(SectionType.Code, ref lookahead)
                : moduleByHash(header.ModuleHash) ?? throw new SnapshotFormatException($"the snapshot does not embed its module, and no module with SHA-256 {header.ModuleHash} was found");
            var hash = SnapshotWriter.Hash(code);
            if (hash != header.ModuleHash) throw new SnapshotFormatException($"the module's SHA-256 is {hash}, the snapshot expects {header.ModuleHash}");
        }
        var resources = ParseResources(Section(SectionType.Resources, ref lookahead), Version);
        var output = ParseOutput(Section(SectionType.Output, ref lookahead));
        var instance = ParseInstance(Section(SectionType.Instance, ref lookahead), Version);
        var execution = ParseExecution(Section(SectionType.Execution, ref lookahead));
        return new Snapshot(header, code, resources, output, instance, execution);
    }

    /// <summary>
    /// Streams the memory section into <paramref name="memory"/> (grown to the captured size; frames not in the
    /// snapshot are zeroed), then checks the section checksum and the end of the snapshot. With a null target the
    /// frames are only checked. The page count must be the header's, checked before anything grows. With
    /// <paramref name="keepContents"/> the memory is not cleared first.
    /// </summary>
    public (uint Pages, int Frames) ReadMemory(LinearMemory? memory, uint expectedPages, bool keepContents = false)
    {
        var (type, length) = SectionHeader();
        if (type != SectionType.Memory) throw new SnapshotFormatException($"expected the Memory section, found {type}");
        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(prefix);
        var crc = new Crc32C();
        crc.Append(prefix);
        var pages = BinaryPrimitives.ReadUInt32LittleEndian(prefix);
        var count = BinaryPrimitives.ReadUInt32LittleEndian(prefix[4..]);
        if (8 + (long)count * SnapshotLayout.FrameRecordSize != length) throw new SnapshotFormatException($"the Memory section's length {length} does not match its {count} frames");
        if (pages != expectedPages) throw new SnapshotFormatException($"the Memory section has {pages} pages, the header {expectedPages}");
        var frameLimit = (long)pages * LinearMemory.FramesPerPage;
        if (count > frameLimit) throw new SnapshotFormatException($"{count} frames cannot fit in {pages} pages");
        if (memory is not null)
        {
            if (memory.Pages > pages) throw new SnapshotFormatException($"the snapshot has {pages} pages, fewer than the module's minimum {memory.Pages}");
            // Only the instantiated part can hold data-segment bytes; grown pages start zeroed. A memory received
            // ahead of the snapshot (live migration) keeps its contents and takes the frames on top.
            if (!keepContents) memory.Span.Clear();
            if (memory.Pages < pages && memory.Grow(pages - memory.Pages) < 0) throw new SnapshotFormatException($"memory cannot grow to {pages} pages");
        }
        // Records arrive in blocks of up to 256 (about 1 MiB), read with one call each; none for a snapshot without frames.
        var block = new byte[Math.Min(256, count) * SnapshotLayout.FrameRecordSize];
        var previous = -1L;
        for (var done = 0u; done < count;)
        {
            var records = (int)Math.Min(256, count - done);
            var span = block.AsSpan(0, records * SnapshotLayout.FrameRecordSize);
            ReadExactly(span);
            crc.Append(span);
            for (var i = 0; i < records; i++, done++)
            {
                var record = span.Slice(i * SnapshotLayout.FrameRecordSize, SnapshotLayout.FrameRecordSize);
                var frame = BinaryPrimitives.ReadUInt32LittleEndian(record);
                if (frame <= previous || frame >= frameLimit) throw new SnapshotFormatException($"memory frame record {done} names frame {frame}, out of order or beyond {pages} pages");
                previous = frame;
                memory?.WriteFrame(frame, record[4..]);
            }
        }
        if (ReadCrc() != crc.Value) throw new SnapshotFormatException("the Memory section fails its checksum");
        var (end, endLength) = SectionHeader();
        if (end != SectionType.End || endLength != 0) throw new SnapshotFormatException($"expected the End section, found {end}");
        if (ReadCrc() != Crc32C.Of([])) throw new SnapshotFormatException("the End section fails its checksum");
        if (stream.ReadByte() >= 0) throw new SnapshotFormatException("unexpected bytes after the End section");
        return (pages, (int)count);
    }

    private static SnapshotHeader ParseHeader(byte[] payload)
    {
        var r = new PayloadReader(payload, SectionType.Header);
        var hash = Convert.ToHexStringLower(r.Bytes32());
        var header = new SnapshotHeader(hash, r.Bool(), r.I64(), r.U32(), r.I64());
        r.End();
        if (header.InstructionsExecuted < 0) throw new SnapshotFormatException("Header section: negative instruction count");
        return header;
    }

    private static ResourceSegment ParseResources(byte[] payload, ushort version)
    {
        var r = new PayloadReader(payload, SectionType.Resources);
        var arguments = new List<string>();
        for (var n = r.Count(4); n > 0; n--) arguments.Add(r.String());
        var environment = new List<KeyValuePair<string, string>>();
        for (var n = r.Count(8); n > 0; n--) environment.Add(new(r.String(), r.String()));
        var preopens = new List<Preopen>();
        for (var n = r.Count(8); n > 0; n--) preopens.Add(new Preopen(r.String(), r.String()));
        var listeners = new List<string>();
        for (var n = r.Count(4); n > 0; n--) listeners.Add(r.String());
        var descriptors = new List<DescriptorRecord>();
        long copied = 0;
        for (var n = r.Count(40); n > 0; n--)
        {
            var fd = r.I32();
            var kind = r.Enum<ResourceKind>(7);
            var binding = r.Enum<ResourceBinding>(3);
            var attachment = r.Enum<ResourceAttachment>(3);
            var flags = r.U16();
            var rightsBase = r.U64();
            var rightsInheriting = r.U64();
            var path = r.String();
            var readable = r.Bool();
            var writable = r.Bool();
            var offset = r.I64();
            var preopen = r.I32();
            var components = new string[r.Count(4)];
            for (var i = 0; i < components.Length; i++) components[i] = r.String();
            var listener = r.I32();
            var copy = version >= 2 && r.Bool() ? new CopiedFile(r.I64(), r.Bytes().ToArray()) : null;
            if (copy is not null)
            {
                if (kind != ResourceKind.File) throw r.Error($"{kind} descriptor {fd} carries a file copy");
                if (copy.Length < copy.Data.Length) throw r.Error($"descriptor {fd} carries a copy of {copy.Length} bytes with {copy.Data.Length} bytes of data");
                copied += copy.Length;
                if (copied > SnapshotLayout.MaxCopiedFileBytes) throw r.Error($"descriptor {fd} brings the files copied to {copied} bytes, {SnapshotLayout.MaxCopiedFileBytes} bytes at most");
            }
            if (kind == ResourceKind.File && (binding == ResourceBinding.ByValue) != (copy is not null)) throw r.Error($"file descriptor {fd} is bound {binding} {(copy is null ? "without" : "with")} a copy of its contents");
            if (fd < 0 || offset < 0) throw r.Error($"descriptor {fd} has a negative number or offset");
            if (kind == ResourceKind.Directory && (preopen < 0 || preopen >= preopens.Count)) throw r.Error($"directory descriptor {fd} names preopen {preopen}");
            if (kind == ResourceKind.SocketListener && (listener < 0 || listener >= listeners.Count)) throw r.Error($"socket descriptor {fd} names listener {listener}");
            if (kind == ResourceKind.File && path.Length == 0) throw r.Error($"file descriptor {fd} has no path");
            if (components.Any(c => c is "" or "." or ".." || c.Contains('/'))) throw r.Error($"directory descriptor {fd} has an unsafe path component");
            descriptors.Add(new DescriptorRecord(fd, kind, binding, attachment, flags, rightsBase, rightsInheriting, path, readable, writable, offset, preopen, components, listener, copy));
        }
        if (descriptors.Select(d => d.Fd).Distinct().Count() != descriptors.Count) throw r.Error("a descriptor number appears twice");
        var monotonic = r.I64();
        r.End();
        return new ResourceSegment(arguments, environment, preopens, listeners, descriptors, monotonic);
    }

    private static OutputSequence ParseOutput(byte[] payload)
    {
        var r = new PayloadReader(payload, SectionType.Output);
        var output = new OutputSequence(r.I64(), r.I64());
        r.End();
        if (output.Stdout < 0 || output.Stderr < 0) throw r.Error("negative output sequence number");
        return output;
    }

    private static InstanceState ParseInstance(byte[] payload, ushort version)
    {
        var r = new PayloadReader(payload, SectionType.Instance);
        var globals = new ulong[r.Count(8)];
        for (var i = 0; i < globals.Length; i++) globals[i] = r.U64();
        var tables = new ulong[]?[r.Count(4)];
        for (var t = 0; t < tables.Length; t++)
        {
            if (version >= 3 && r.PeekU32() == SnapshotLayout.TableAsInstantiated)
            {
                r.U32();
                continue;
            }
            var elements = new ulong[r.Count(8)];
            for (var i = 0; i < elements.Length; i++) elements[i] = r.U64();
            tables[t] = elements;
        }
        var droppedElements = new bool[r.Count(1)];
        for (var i = 0; i < droppedElements.Length; i++) droppedElements[i] = r.Bool();
        var droppedData = new bool[r.Count(1)];
        for (var i = 0; i < droppedData.Length; i++) droppedData[i] = r.Bool();
        r.End();
        return new InstanceState { Globals = globals, Tables = tables, DroppedElements = droppedElements, DroppedData = droppedData };
    }

    private static ExecutionState ParseExecution(byte[] payload)
    {
        var r = new PayloadReader(payload, SectionType.Execution);
        var entry = r.U32();
        var instructions = r.I64();
        var frames = new FrameState[r.Count(13)];
        for (var i = 0; i < frames.Length; i++) frames[i] = new FrameState(r.U32(), r.I32(), r.I32(), r.Bool());
        var stack = new ulong[r.Count(8)];
        for (var i = 0; i < stack.Length; i++) stack[i] = r.U64();
        r.End();
        return new ExecutionState { EntryFunction = entry, Frames = frames, Stack = stack, InstructionsExecuted = instructions };
    }
}
