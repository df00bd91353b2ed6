namespace Ferry.Mobility.Snapshots;

/// <summary>Section types, in the order a snapshot holds them (docs/snapshot-format.md).</summary>
public enum SectionType : byte
{
    Header = 1,
    Code = 2,
    Resources = 3,
    Output = 4,
    Instance = 5,
    Execution = 6,
    Memory = 7,
    End = 255,
}

/// <summary>The constants of the format.</summary>
public static class SnapshotLayout
{
    public static ReadOnlySpan<byte> Magic => "FERRYSNP"u8;
    /// <summary>
    /// Version 2 added the by-value copy of a file whose name was gone (a descriptor's last field); version 3 the table
    /// written as <see cref="TableAsInstantiated"/>. Versions 1 and 2 are still read.
    /// </summary>
    public const ushort Version = 3;
    /// <summary>In place of a table's element count: nothing wrote the table since instantiation, so no element follows.</summary>
    public const uint TableAsInstantiated = uint.MaxValue;
    public const ushort OldestReadableVersion = 1;
    /// <summary>The most file contents one snapshot carries by value; a process holding more cannot be captured.</summary>
    public const long MaxCopiedFileBytes = 1L << 30;
    /// <summary>Section header: type (1), three zero bytes, payload length (8).</summary>
    public const int SectionHeaderSize = 12;
    public const int FrameRecordSize = 4 + Engine.Memory.LinearMemory.FrameSize;

    /// <summary>The largest payload each section may declare; checked before anything is allocated.</summary>
    public static long MaxPayload(SectionType type) => type switch
    {
        SectionType.Header => 4096,
        SectionType.Code => 256L << 20,
        SectionType.Resources => (16L << 20) + MaxCopiedFileBytes,
        SectionType.Output => 64,
        SectionType.Instance => 256L << 20,
        SectionType.Execution => 1L << 30,
        SectionType.Memory => 8 + (long)Engine.Memory.LinearMemory.MaxSupportedPages * Engine.Memory.LinearMemory.FramesPerPage * FrameRecordSize,
        SectionType.End => 0,
        _ => -1,
    };
}
