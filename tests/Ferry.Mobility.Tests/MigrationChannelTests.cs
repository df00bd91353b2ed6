using Ferry.Mobility.Migration;

namespace Ferry.Mobility.Tests;

/// <summary>The frame layer alone: what a damaged frame header does, over a byte stream.</summary>
public sealed class MigrationChannelTests
{
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
}
