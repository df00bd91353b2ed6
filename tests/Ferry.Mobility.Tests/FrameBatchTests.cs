using System.Buffers.Binary;
using Ferry.Engine.Memory;
using Ferry.Mobility.Migration;
using Ferry.Wasm;

namespace Ferry.Mobility.Tests;

/// <summary>What a Frames message carries for an all-zero frame, by the use the message is for.</summary>
public sealed class FrameBatchTests
{
    private const uint ZeroFlag = 0x8000_0000;

    /// <summary>One page (16 frames): frame 3 written, frame 5 all zero.</summary>
    private static LinearMemory Memory()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1, 1)));
        var written = new byte[LinearMemory.FrameSize];
        new Random(3).NextBytes(written);
        memory.WriteFrame(3, written);
        return memory;
    }

    private static (uint[] Numbers, long DataBytes) Message(IReadOnlyList<ReadOnlyMemory<byte>> pieces)
    {
        var head = pieces[0].Span;
        var numbers = new uint[BinaryPrimitives.ReadUInt32LittleEndian(head)];
        for (var i = 0; i < numbers.Length; i++) numbers[i] = BinaryPrimitives.ReadUInt32LittleEndian(head[(4 + 4 * i)..]);
        long data = 0;
        for (var i = 1; i < pieces.Count; i++) data += pieces[i].Length;
        return (numbers, data);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_skipped_zero_frame_is_left_out_of_the_message(bool inPlace)
    {
        var memory = Memory();
        var batch = new FrameBatch(gathered: true);
        Assert.True(batch.Add(memory, 3, ZeroFrames.Skipped, inPlace));
        Assert.False(batch.Add(memory, 5, ZeroFrames.Skipped, inPlace));
        var (numbers, data) = Message(batch.Pieces);
        Assert.Equal([3u], numbers);
        Assert.Equal(LinearMemory.FrameSize, data);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_flagged_zero_frame_goes_as_its_number_without_bytes(bool inPlace)
    {
        var memory = Memory();
        var batch = new FrameBatch(gathered: true);
        Assert.True(batch.Add(memory, 3, ZeroFrames.Flagged, inPlace));
        Assert.True(batch.Add(memory, 5, ZeroFrames.Flagged, inPlace));
        var (numbers, data) = Message(batch.Pieces);
        Assert.Equal([3u, 5u | ZeroFlag], numbers);
        Assert.Equal(LinearMemory.FrameSize, data);
    }

    /// <summary>Pre-copy's stop: no frame is looked at before it is sent, so a zero frame goes whole and lands as it was.</summary>
    [Fact]
    public void A_zero_frame_sent_as_it_is_goes_whole_and_lands_as_zero()
    {
        var memory = Memory();
        var batch = new FrameBatch(gathered: true);
        Assert.True(batch.Add(memory, 3, ZeroFrames.Sent, inPlace: true));
        Assert.True(batch.Add(memory, 5, ZeroFrames.Sent, inPlace: true));
        var pieces = batch.Pieces;
        var (numbers, data) = Message(pieces);
        Assert.Equal([3u, 5u], numbers);
        Assert.Equal(2 * LinearMemory.FrameSize, data);

        var payload = pieces.SelectMany(p => p.ToArray()).ToArray();
        var target = new LinearMemory(new MemoryType(new Limits(1, 1)));
        target.WriteFrame(5, Enumerable.Repeat((byte)0xAA, LinearMemory.FrameSize).ToArray());
        FrameBatch.Apply(payload, target, null);
        Assert.Equal(memory.Frame(3).ToArray(), target.Frame(3).ToArray());
        Assert.True(target.Frame(5).IndexOfAnyExcept((byte)0) < 0);
    }
}
