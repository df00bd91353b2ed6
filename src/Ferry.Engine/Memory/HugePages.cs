using System.Runtime.InteropServices;

namespace Ferry.Engine.Memory;

/// <summary>
/// Asks Linux to back a large linear memory with 2 MiB pages where it can (transparent huge pages in "madvise" mode):
/// 512 times fewer page-table entries, so fewer TLB misses for the guest and fewer page faults when a migration
/// fills or reads the memory frame by frame. A hint only: elsewhere, or when refused, nothing changes. Also gives a
/// buffer's pages back to the OS (a memory that grew into a new buffer).
/// </summary>
internal static partial class HugePages
{
    private const int MadviseHugePage = 14;
    private const long HugePageSize = 2 << 20;

    public static unsafe void Advise(byte* start, long length)
    {
        if (length < 2 * HugePageSize) return;
        // Only whole 2 MiB pages inside the range: madvise needs an aligned start, and the edges may hold other objects.
        AdviseWhole(start, length, HugePageSize, MadviseHugePage);
    }

    /// <summary>Drops the whole 4 KiB pages inside [start, start+length) (MADV_DONTNEED: they read as zero again, unbacked).</summary>
    public static unsafe void Release(byte* start, long length) => AdviseWhole(start, length, PageSize, MadviseDontNeed);

    private const int MadviseDontNeed = 4;
    private const long PageSize = 4096;

    /// <summary>madvise over the whole <paramref name="alignment"/>-sized pages inside the range; without Linux or libc, nothing.</summary>
    private static unsafe void AdviseWhole(byte* start, long length, long alignment, int advice)
    {
        if (!OperatingSystem.IsLinux()) return;
        var first = ((long)start + alignment - 1) & ~(alignment - 1);
        var end = ((long)start + length) & ~(alignment - 1);
        if (end <= first) return;
        try
        {
            _ = Madvise((nint)first, (nuint)(end - first), advice);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to ask: ordinary pages, and an old buffer is freed only when collected.
        }
    }

    [LibraryImport("libc.so.6", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}
