using System.Net;
using System.Net.Sockets;

namespace Ferry.Wasi.Resources;

/// <summary>A listening socket granted with --tcplisten: bound by identifier, fixed (an endpoint of this machine).</summary>
public sealed class ListenerResource(Socket socket, int index) : Resource
{
    /// <summary>Which of the granted listeners (--tcplisten, in order) this is.</summary>
    public int Index { get; } = index;

    public override ResourceKind Kind => ResourceKind.SocketListener;
    public override ResourceBinding Binding => ResourceBinding.ByIdentifier;
    public override ResourceAttachment Attachment => ResourceAttachment.Fixed;
    public override string? Location => Socket.LocalEndPoint?.ToString();
    internal override FileType FileType => FileType.SocketStream;
    public Socket Socket { get; } = socket;

    public static ListenerResource Listen(IPEndPoint endpoint, int index)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(endpoint);
        socket.Listen(128);
        return new ListenerResource(socket, index);
    }

    public override void Dispose()
    {
        Socket.Dispose();
        base.Dispose();
    }
}

/// <summary>An accepted connection: bound by identifier, fixed.</summary>
public sealed class StreamSocketResource(Socket socket) : Resource
{
    public override ResourceKind Kind => ResourceKind.SocketStream;
    public override ResourceBinding Binding => ResourceBinding.ByIdentifier;
    public override ResourceAttachment Attachment => ResourceAttachment.Fixed;
    public override string? Location => Socket.RemoteEndPoint?.ToString();
    internal override FileType FileType => FileType.SocketStream;
    public Socket Socket { get; } = socket;

    internal override int Read(Span<byte> buffer) => Socket.Receive(buffer);

    internal override int Write(ReadOnlySpan<byte> data) => Socket.Send(data);

    public override void Dispose()
    {
        Socket.Dispose();
        base.Dispose();
    }
}
