using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>
/// memory.grow in small steps, as malloc's sbrk does in an interpreter guest: the memory keeps zeroed headroom, so most
/// steps move nothing, and the guest still sees exactly the pages it asked for.
/// </summary>
public sealed class MemoryGrowthTests
{
    [Fact]
    public unsafe void Growing_a_page_at_a_time_moves_the_memory_only_a_logarithmic_number_of_times()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1, null)));
        var moves = 0;
        var at = (nint)memory.Base;
        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(1 + i, memory.Grow(1));
            if ((nint)memory.Base != at) moves++;
            at = (nint)memory.Base;
        }
        Assert.Equal(1001u, memory.Pages);
        // Doubling from 1 page to at least 1001: 10 moves; copying at every step would be 1000.
        Assert.InRange(moves, 1, 11);
    }

    [Fact]
    public void The_guest_sees_only_the_pages_it_grew_to_and_every_new_page_is_zero()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1, null)));
        for (var pages = 1u; pages < 40; pages++)
        {
            Assert.Equal((ulong)pages * MemoryType.PageSize, memory.Size);
            Assert.Equal((int)memory.Size, memory.Span.Length);
            Assert.Equal(memory.Size, memory.LoadLimit);
            Assert.Equal(-2, memory.CheckAccess(memory.Size, 1, store: true));
            Assert.Throws<ArgumentOutOfRangeException>(() => memory.Frame(memory.FrameCount).Length);
            // Fill everything visible, so that a page the next step exposes is zero only if the headroom was.
            memory.Span.Fill(0xA5);
            Assert.Equal((int)pages, memory.Grow(1));
            Assert.True(memory.Span[(int)(pages * MemoryType.PageSize)..].IndexOfAnyExcept((byte)0) < 0, $"page {pages} was not zero when it appeared");
            Assert.True(memory.Span[..(int)(pages * MemoryType.PageSize)].IndexOfAnyExcept((byte)0xA5) < 0, "growing lost earlier contents");
        }
    }

    [Fact]
    public void A_memory_with_headroom_still_grows_to_its_declared_maximum_and_no_further()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1, 3)));
        Assert.Equal(1, memory.Grow(1));
        Assert.Equal(2, memory.Grow(1));
        Assert.Equal(-1, memory.Grow(1));
        Assert.Equal(3u, memory.Pages);
    }
}
