using System.Net;
using System.Net.Sockets;
using Ferry.Mobility.Migration;

namespace Ferry.Mobility.Tests;

/// <summary>The frame layer alone: what a damaged frame header does, over a byte stream.</summary>
public sealed class MigrationChannelTests
{
    /// <summary>The two ends of a TCP connection on 127.0.0.1.</summary>
    private static async Task<(TcpClient Client, TcpClient Server)> Connected()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        return (client, await listener.AcceptTcpClientAsync());
    }

    private static async Task<byte[]> SentBytes(MigrationFrame type, byte[] payload)
    {
        var wire = new MemoryStream();
        await new MigrationChannel(wire).SendAsync(type, payload);
        return wire.ToArray();
    }

    [Fact]
    public async Task An_intact_frame_arrives_with_its_type_and_payload()
    {
        var bytes = await SentBytes(MigrationFrame.RoundEnd, [7, 0, 0, 0]);
        var (type, payload) = await new MigrationChannel(new MemoryStream(bytes)).ReceiveAsync();
        Assert.Equal(MigrationFrame.RoundEnd, type);
        Assert.Equal([7, 0, 0, 0], payload.ToArray());
    }

    /// <summary>
    /// One bit of the type byte flipped on the way, the payload intact: each pair is a type the receiver could take at that
    /// point in place of the other (a refusal read as an admission, a round's end as its acknowledgement). A checksum over
    /// the payload alone let them through.
    /// </summary>
    [Theory]
    [InlineData(MigrationFrame.Admit, MigrationFrame.Committed, 0)]
    [InlineData(MigrationFrame.Committed, MigrationFrame.Admit, 0)]
    [InlineData(MigrationFrame.RoundEnd, MigrationFrame.RoundAck, 4)]
    [InlineData(MigrationFrame.Abort, MigrationFrame.Resumed, 0)]
    [InlineData(MigrationFrame.Image, MigrationFrame.ImageEnd, 64)]
    public async Task A_frame_whose_type_changed_on_the_way_fails_its_checksum(MigrationFrame sent, MigrationFrame arrives, int payloadLength)
    {
        var payload = new byte[payloadLength];
        new Random(payloadLength).NextBytes(payload);
        var bytes = await SentBytes(sent, payload);
        bytes[0] = (byte)arrives;
        var failure = await Assert.ThrowsAsync<MigrationChecksumException>(() => new MigrationChannel(new MemoryStream(bytes)).ReceiveAsync());
        Assert.Equal(arrives, failure.Type);
    }

    /// <summary>
    /// Frames sent ahead of their checksums over a socket (pre-copy's final frames), each trailer at the head of the next
    /// frame's write, the last with the small frame after them: the receiver reads the very bytes of the same frames sent
    /// whole, and each frame arrives intact.
    /// </summary>
    [Fact]
    public async Task Frames_sent_ahead_of_their_checksums_put_the_same_bytes_on_the_wire_as_frames_sent_whole()
    {
        var first = new byte[3 * 4096 + 12];
        var second = new byte[4096 + 8];
        new Random(1).NextBytes(first);
        new Random(2).NextBytes(second);
        var whole = new MemoryStream();
        var reference = new MigrationChannel(whole);
        await reference.SendAsync(MigrationFrame.Frames, [first.AsMemory(0, 12), first.AsMemory(12)]);
        await reference.SendAsync(MigrationFrame.Frames, [second]);
        await reference.SendAsync(MigrationFrame.ImageEnd, ReadOnlyMemory<byte>.Empty);

        var (client, server) = await Connected();
        using var sending = client;
        using var receiving = server;
        var sender = new MigrationChannel(client.GetStream());
        await sender.SendAsync(MigrationFrame.Frames, [first.AsMemory(0, 12), first.AsMemory(12)], checksum: null, CancellationToken.None);
        await sender.SendAsync(MigrationFrame.Frames, [second], checksum: null, CancellationToken.None);
        await sender.SendAsync(MigrationFrame.ImageEnd, ReadOnlyMemory<byte>.Empty);
        Assert.Equal(whole.Length, sender.BytesSent);

        var wire = new byte[whole.Length];
        await server.GetStream().ReadExactlyAsync(wire).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(whole.ToArray(), wire);
        var receiver = new MigrationChannel(new MemoryStream(wire));
        Assert.Equal(first, (await receiver.ExpectAsync(CancellationToken.None, MigrationFrame.Frames)).Payload.ToArray());
        Assert.Equal(second, (await receiver.ExpectAsync(CancellationToken.None, MigrationFrame.Frames)).Payload.ToArray());
        await receiver.ExpectAsync(CancellationToken.None, MigrationFrame.ImageEnd);
    }

    /// <summary>
    /// A receiver polls for data only as long as its budget lasts, in all, then waits for it: a peer silent for longer than
    /// the budget costs the receiver's core only the budget, and the frame that comes at last is received all the same.
    /// </summary>
    [Fact]
    public async Task A_receiver_polls_for_data_only_within_its_budget_and_then_waits()
    {
        var (client, server) = await Connected();
        using var sending = client;
        using var receiving = server;
        var sender = new MigrationChannel(client.GetStream());
        var receiver = new MigrationChannel(server.GetStream()) { PollBudget = TimeSpan.FromMilliseconds(50) };

        var first = Task.Run(() => receiver.ReceiveAsync());
        await Task.Delay(400);
        await sender.SendAsync(MigrationFrame.RoundEnd, new byte[] { 1, 0, 0, 0 });
        Assert.Equal(MigrationFrame.RoundEnd, (await first.WaitAsync(TimeSpan.FromSeconds(10))).Type);
        // The whole budget, and not the 400 ms of silence.
        Assert.InRange(receiver.Polled, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(250));

        var polled = receiver.Polled;
        var second = Task.Run(() => receiver.ReceiveAsync());
        await Task.Delay(100);
        await sender.SendAsync(MigrationFrame.RoundEnd, new byte[] { 2, 0, 0, 0 });
        Assert.Equal(MigrationFrame.RoundEnd, (await second.WaitAsync(TimeSpan.FromSeconds(10))).Type);
        Assert.Equal(polled, receiver.Polled);
    }
}
