using System.Net.Sockets;
using Ferry.Engine;
using Ferry.Wasi.Resources;

namespace Ferry.Wasi;

public sealed partial class WasiProcess
{
    private const ushort NonBlocking = 4;

    private void DefineSocketFunctions(Linker linker)
    {
        Define(linker, "sock_accept", "iii", (c, a) =>
        {
            var listener = Resources.Get<ListenerResource>((uint)a[0], Errno.NotSocket);
            var memory = new GuestMemory(c.Memory);
            memory.Slice(a[2], 4);
            if ((listener.Flags & NonBlocking) != 0 && !listener.Socket.Poll(0, SelectMode.SelectRead)) return Errno.AgainLater;
            var connection = new StreamSocketResource(listener.Socket.Accept()) { Flags = (ushort)a[1] };
            memory.WriteU32(a[2], (uint)Resources.Add(connection));
            return Errno.Success;
        });
        Define(linker, "sock_recv", "iiiiii", (c, a) =>
        {
            var socket = Resources.Get<StreamSocketResource>((uint)a[0], Errno.NotSocket);
            var memory = new GuestMemory(c.Memory);
            var vectors = memory.Read(a[1], a[2] * IovecSize);
            const uint Peek = 1, WaitAll = 2;
            var flags = (uint)a[3] & Peek;
            var waitAll = ((uint)a[3] & WaitAll) != 0;
            ulong total = 0;
            for (var i = 0; i < (int)a[2]; i++)
            {
                var buffer = Iovec(memory, vectors, i);
                var received = 0;
                do
                {
                    var count = socket.Socket.Receive(buffer[received..], flags != 0 ? SocketFlags.Peek : SocketFlags.None);
                    if (count == 0) break;
                    received += count;
                } while (waitAll && received < buffer.Length);
                total += (ulong)received;
                if (received < buffer.Length) break;
            }
            memory.WriteU32(a[4], (uint)total);
            memory.WriteU16(a[5], 0);
            return Errno.Success;
        });
        Define(linker, "sock_send", "iiiii", (c, a) =>
        {
            var socket = Resources.Get<StreamSocketResource>((uint)a[0], Errno.NotSocket);
            var memory = new GuestMemory(c.Memory);
            var vectors = memory.Read(a[1], a[2] * IovecSize);
            ulong total = 0;
            for (var i = 0; i < (int)a[2]; i++)
            {
                total += (ulong)socket.Write(Ciovec(memory, vectors, i));
            }
            memory.WriteU32(a[4], (uint)total);
            return Errno.Success;
        });
        Define(linker, "sock_shutdown", "ii", (_, a) =>
        {
            var socket = Resources.Get<StreamSocketResource>((uint)a[0], Errno.NotSocket);
            socket.Socket.Shutdown((uint)a[1] switch
            {
                1 => SocketShutdown.Receive,
                2 => SocketShutdown.Send,
                3 => SocketShutdown.Both,
                _ => throw new WasiError(Errno.Invalid),
            });
            return Errno.Success;
        });
    }
}
