using System.Buffers.Binary;
using System.Security.Cryptography;
using Ferry.Engine;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Snapshots;

/// <summary>Writes a snapshot to any stream, section by section; memory frames stream without a second copy.</summary>
public static class SnapshotWriter
{
    /// <summary>
    /// Writes <paramref name="snapshot"/> and the memory's non-zero frames; with <paramref name="memoryFrames"/> false
    /// the memory section names the page count only (live migration sends the frames on their own).
    /// </summary>
    public static void Write(Stream stream, Snapshot snapshot, LinearMemory? memory, bool memoryFrames = true)
    {
        Span<byte> start = stackalloc byte[12];
        SnapshotLayout.Magic.CopyTo(start);
        BinaryPrimitives.WriteUInt16LittleEndian(start[8..], SnapshotLayout.Version);
        stream.Write(start);

        var header = new PayloadWriter();
        header.Raw(Convert.FromHexString(snapshot.Header.ModuleHash));
        header.Byte(snapshot.Header.CodeEmbedded ? (byte)1 : (byte)0);
        header.I64(snapshot.Header.InstructionsExecuted);
        header.U32(snapshot.Header.MemoryPages);
        header.I64(snapshot.Header.CapturedAtUnixMilliseconds);
        Section(stream, SectionType.Header, header.Written);

        if (snapshot.Header.CodeEmbedded) Section(stream, SectionType.Code, snapshot.Code.Span);
        Section(stream, SectionType.Resources, Resources(snapshot.Resources));

        var output = new PayloadWriter();
        output.I64(snapshot.Output.Stdout);
        output.I64(snapshot.Output.Stderr);
        Section(stream, SectionType.Output, output.Written);

        Section(stream, SectionType.Instance, Instance(snapshot.Instance));
        Section(stream, SectionType.Execution, Execution(snapshot.Execution));
        Memory(stream, memory, memoryFrames);
        Section(stream, SectionType.End, []);
        stream.Flush();
    }

    /// <summary>The SHA-256 of module bytes, as snapshots name modules.</summary>
    public static string Hash(ReadOnlySpan<byte> module) => Convert.ToHexStringLower(SHA256.HashData(module));

    private static void SectionHeader(Stream stream, SectionType type, long length)
    {
        Span<byte> header = stackalloc byte[SnapshotLayout.SectionHeaderSize];
        header.Clear();
        header[0] = (byte)type;
        BinaryPrimitives.WriteInt64LittleEndian(header[4..], length);
        stream.Write(header);
    }

    private static void Crc(Stream stream, uint crc)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, crc);
        stream.Write(bytes);
    }

    private static void Section(Stream stream, SectionType type, ReadOnlySpan<byte> payload)
    {
        SectionHeader(stream, type, payload.Length);
        stream.Write(payload);
        Crc(stream, Crc32C.Of(payload));
    }

    private static ReadOnlySpan<byte> Resources(ResourceSegment resources)
    {
        var w = new PayloadWriter();
        w.U32((uint)resources.Arguments.Count);
        foreach (var argument in resources.Arguments) w.String(argument);
        w.U32((uint)resources.Environment.Count);
        foreach (var (key, value) in resources.Environment)
        {
            w.String(key);
            w.String(value);
        }
        w.U32((uint)resources.Preopens.Count);
        foreach (var preopen in resources.Preopens)
        {
            w.String(preopen.HostPath);
            w.String(preopen.GuestPath);
        }
        w.U32((uint)resources.Listeners.Count);
        foreach (var listener in resources.Listeners) w.String(listener);
        w.U32((uint)resources.Descriptors.Count);
        foreach (var d in resources.Descriptors)
        {
            w.I32(d.Fd);
            w.Byte((byte)d.Kind);
            w.Byte((byte)d.Binding);
            w.Byte((byte)d.Attachment);
            w.U16(d.Flags);
            w.U64(d.RightsBase);
            w.U64(d.RightsInheriting);
            w.String(d.HostPath ?? "");
            w.Byte(d.Readable ? (byte)1 : (byte)0);
            w.Byte(d.Writable ? (byte)1 : (byte)0);
            w.I64(d.Offset);
            w.I32(d.PreopenIndex);
            var components = d.Components ?? [];
            w.U32((uint)components.Length);
            foreach (var component in components) w.String(component);
            w.I32(d.ListenerIndex);
            w.Byte(d.Copy is null ? (byte)0 : (byte)1);
            if (d.Copy is { } copy)
            {
                w.I64(copy.Length);
                w.Bytes(copy.Data);
            }
        }
        w.I64(resources.MonotonicNanoseconds);
        return w.Written;
    }

    private static ReadOnlySpan<byte> Instance(InstanceState state)
    {
        var w = new PayloadWriter();
        w.U32((uint)state.Globals.Length);
        foreach (var global in state.Globals) w.U64(global);
        w.U32((uint)state.Tables.Length);
        foreach (var table in state.Tables)
        {
            if (table is null)
            {
                w.U32(SnapshotLayout.TableAsInstantiated);
                continue;
            }
            w.U32((uint)table.Length);
            foreach (var element in table) w.U64(element);
        }
        w.U32((uint)state.DroppedElements.Length);
        foreach (var dropped in state.DroppedElements) w.Byte(dropped ? (byte)1 : (byte)0);
        w.U32((uint)state.DroppedData.Length);
        foreach (var dropped in state.DroppedData) w.Byte(dropped ? (byte)1 : (byte)0);
        return w.Written;
    }

    private static ReadOnlySpan<byte> Execution(ExecutionState state)
    {
        var w = new PayloadWriter();
        w.U32(state.EntryFunction);
        w.I64(state.InstructionsExecuted);
        w.U32((uint)state.Frames.Length);
        foreach (var frame in state.Frames)
        {
            w.U32(frame.FunctionIndex);
            w.I32(frame.Fp);
            w.I32(frame.Instruction);
            w.Byte(frame.AfterCall ? (byte)1 : (byte)0);
        }
        w.U32((uint)state.Stack.Length);
        foreach (var slot in state.Stack) w.U64(slot);
        return w.Written;
    }

    /// <summary>Page count, frame count, then each non-zero 4 KiB frame as (index, bytes): zero frames are never written.</summary>
    private static void Memory(Stream stream, LinearMemory? memory, bool withFrames)
    {
        var frames = new List<int>();
        if (memory is not null && withFrames)
        {
            for (var frame = 0; frame < memory.FrameCount; frame++)
            {
                if (memory.Frame(frame).IndexOfAnyExcept((byte)0) >= 0) frames.Add(frame);
            }
        }
        SectionHeader(stream, SectionType.Memory, 8 + (long)frames.Count * SnapshotLayout.FrameRecordSize);
        var crc = new Crc32C();
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(prefix, memory?.Pages ?? 0);
        BinaryPrimitives.WriteUInt32LittleEndian(prefix[4..], (uint)frames.Count);
        stream.Write(prefix);
        crc.Append(prefix);
        // Frames go out in blocks of up to 256 records (about 1 MiB): few stream calls, one reusable buffer, sized to the
        // frames so that a snapshot without any (live migration's image) allocates and touches no fresh megabyte in the downtime.
        var block = new byte[Math.Min(256, frames.Count) * SnapshotLayout.FrameRecordSize];
        var used = 0;
        foreach (var frame in frames)
        {
            var record = block.AsSpan(used, SnapshotLayout.FrameRecordSize);
            BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)frame);
            memory!.Frame(frame).CopyTo(record[4..]);
            used += SnapshotLayout.FrameRecordSize;
            if (used == block.Length)
            {
                crc.Append(block);
                stream.Write(block);
                used = 0;
            }
        }
        crc.Append(block.AsSpan(0, used));
        stream.Write(block, 0, used);
        Crc(stream, crc.Value);
    }
}
