using Ferry.Mobility.Snapshots;

namespace Ferry.Mobility.Tests;

public sealed class Crc32CTests
{
    [Fact]
    public void CheckValueOfTheStandardTestStringIsE3069283()
    {
        Assert.Equal(0xE3069283u, Crc32C.Of("123456789"u8));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(2 * 1024 - 1)]
    [InlineData(2 * 1024)]
    [InlineData(4096)]
    [InlineData(4096 + 4 * 256)]
    [InlineData(16 * 1024 - 1)]
    [InlineData(16 * 1024)]
    [InlineData(16 * 1024 + 13)]
    [InlineData(1 << 20)]
    [InlineData((1 << 20) + 4 + 5)]
    [InlineData(3 * (64 << 10) + 8)]
    [InlineData(3 * (64 << 10) + 24)]
    public void LongInputsSplitIntoLanesGiveTheBitwiseDefinitionsValue(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        Assert.Equal(Bitwise(data), Crc32C.Of(data));
    }

    [Fact]
    public void AppendingInPiecesGivesTheValueOfTheWhole()
    {
        var data = new byte[100_003];
        new Random(5).NextBytes(data);
        var crc = new Crc32C();
        crc.Append(data.AsSpan(0, 40_000));
        crc.Append(data.AsSpan(40_000, 3));
        crc.Append(data.AsSpan(40_003));
        Assert.Equal(Bitwise(data), crc.Value);
    }

    // The definition, one bit at a time: reflected polynomial 0x82F63B78, initial and final inversion.
    private static uint Bitwise(ReadOnlySpan<byte> data)
    {
        var crc = ~0u;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++) crc = (crc & 1) != 0 ? crc >> 1 ^ 0x82F63B78 : crc >> 1;
        }
        return ~crc;
    }
}
