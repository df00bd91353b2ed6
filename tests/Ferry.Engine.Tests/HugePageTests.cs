using System.Globalization;
using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>A large linear memory asks Linux for 2 MiB pages, so a migration filling it frame by frame faults 512 times less.</summary>
public sealed class HugePageTests
{
    [TransparentHugePagesFact]
    public unsafe void A_large_memory_once_written_is_backed_by_huge_pages()
    {
        var memory = new LinearMemory(new MemoryType(new Limits(1024, null)));
        for (long frame = 0; frame < memory.FrameCount; frame++) memory.Base[frame * LinearMemory.FrameSize] = 1;
        // Only the whole 2 MiB pages inside the array can be huge: at least 62 of its 64 MiB.
        Assert.True(HugeBytesWithin((ulong)memory.Base, memory.Size) >= 62L << 20, "the memory is not on huge pages");
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

    /// <summary>AnonHugePages, in bytes, of the /proc/self/smaps mappings that overlap [start, start+length).</summary>
    private static long HugeBytesWithin(ulong start, ulong length)
    {
        var overlaps = false;
        long huge = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var dash = line.IndexOf('-');
            var space = line.IndexOf(' ');
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, null, out var from)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, null, out var to))
            {
                overlaps = from < start + length && to > start;
                continue;
            }
            if (overlaps && line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                huge += long.Parse(line["AnonHugePages:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        return huge;
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
