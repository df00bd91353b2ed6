namespace Ferry.Wasi.Resources;

/// <summary>Standard input, output or error: bound by type, fixed to the machine. Output is counted per stream.</summary>
public sealed class StdioResource(ResourceKind kind, Stream stream, long sequence = 0) : Resource
{
    public override ResourceKind Kind { get; } = kind;
    public override ResourceBinding Binding => ResourceBinding.ByType;
    public override ResourceAttachment Attachment => ResourceAttachment.Fixed;
    public override string? Location => null;
    internal override FileType FileType => FileType.CharacterDevice;

    /// <summary>Bytes written so far: the sequence number of the next byte of this stream.</summary>
    public long Sequence { get; private set; } = sequence;

    internal override int Read(Span<byte> buffer) => Kind == ResourceKind.Stdin ? stream.Read(buffer) : throw new WasiError(Errno.BadFd);

    internal override int Write(ReadOnlySpan<byte> data)
    {
        if (Kind == ResourceKind.Stdin) throw new WasiError(Errno.BadFd);
        stream.Write(data);
        stream.Flush();
        Sequence += data.Length;
        return data.Length;
    }
}
