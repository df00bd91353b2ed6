using System.Globalization;
using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>A large linear memory asks Linux for 2 MiB pages, so a migration filling it frame by frame faults 512 times less.</summary>
public sealed class HugePageTests
{
    [TransparentHugePagesFact]
    public unsafe void A_large_memory_asks_linux_for_huge_pages_over_every_whole_2_MiB_page_inside_it()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1024, null)));
        for (long frame = 0; frame < memory.FrameCount; frame++) memory.Base[frame * LinearMemory.FrameSize] = 1;
        // Only the whole 2 MiB pages inside the array can be huge: at least 62 of its 64 MiB. Whether the kernel then
        // backs them with huge pages depends on its free memory (a CI run with every test assembly at once got none),
        // so this checks the request (VmFlags "hg"), which is Ferry's part.
        Assert.True(HugeAdvisedBytesWithin((ulong)memory.Base, memory.Size) >= 62L << 20, "the memory is not advised for huge pages");
        GC.KeepAlive(memory);
    }

    [Fact]
    public void A_memory_too_small_for_a_huge_page_allocates_and_grows_as_before()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1, null)));
        memory.Span[100] = 7;
        Assert.Equal(1, memory.Grow(2));
        Assert.Equal(7, memory.Span[100]);
    }

    /// <summary>Bytes of [start, start+length) in /proc/self/smaps mappings whose VmFlags carry "hg" (MADV_HUGEPAGE).</summary>
    private static long HugeAdvisedBytesWithin(ulong start, ulong length)
    {
        ulong from = 0, to = 0;
        long advised = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var dash = line.IndexOf('-');
            var space = line.IndexOf(' ');
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, null, out var mappingFrom)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, null, out var mappingTo))
            {
                (from, to) = (mappingFrom, mappingTo);
                continue;
            }
            if (line.StartsWith("VmFlags:", StringComparison.Ordinal) && line.Split(' ').Contains("hg") && from < start + length && to > start)
                advised += (long)(Math.Min(to, start + length) - Math.Max(from, start));
        }
        return advised;
    }
}

/// <summary>A fact that reports itself skipped where Linux offers no transparent huge pages on request.</summary>
public sealed class TransparentHugePagesFactAttribute : FactAttribute
{
    private const string Setting = "/sys/kernel/mm/transparent_hugepage/enabled";

    public TransparentHugePagesFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(Setting) || File.ReadAllText(Setting).Contains("[never]", StringComparison.Ordinal))
            Skip = "transparent huge pages are not available here (Linux with " + Setting + " at madvise or always)";
    }
}
