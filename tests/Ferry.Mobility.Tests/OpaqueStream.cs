namespace Ferry.Mobility.Tests;

/// <summary>
/// A duplex stream that passes everything to another one and hides its type: a migration channel over it cannot tell a
/// socket lies beneath. With <paramref name="ignoresCancellation"/> it reads and writes as if no one could cancel, as a
/// stream that completes from data at hand without looking at the token does.
/// </summary>
internal sealed class OpaqueStream(Stream inner, bool ignoresCancellation = false) : Stream
{
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, ignoresCancellation ? CancellationToken.None : cancellationToken);
    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, ignoresCancellation ? CancellationToken.None : cancellationToken);
    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
