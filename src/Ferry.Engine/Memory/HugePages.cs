using System.Runtime.InteropServices;

namespace Ferry.Engine.Memory;

/// <summary>
/// Asks Linux to back a large linear memory with 2 MiB pages where it can (transparent huge pages in "madvise" mode):
/// 512 times fewer page-table entries, so fewer TLB misses for the guest and fewer page faults when a migration
/// fills or reads the memory frame by frame. A hint only: elsewhere, or when refused, nothing changes.
/// </summary>
internal static partial class HugePages
{
    private const int MadviseHugePage = 14;
    private const long HugePageSize = 2 << 20;

    public static unsafe void Advise(byte* start, long length)
    {
        if (!OperatingSystem.IsLinux() || length < 2 * HugePageSize) return;
        // Only whole 2 MiB pages inside the range: madvise needs an aligned start, and the edges may hold other objects.
        var first = ((long)start + HugePageSize - 1) & ~(HugePageSize - 1);
        var end = ((long)start + length) & ~(HugePageSize - 1);
        if (end <= first) return;
        try
        {
            _ = Madvise((nint)first, (nuint)(end - first), MadviseHugePage);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to ask: ordinary pages.
        }
    }

    /// <summary>Drops the whole 4 KiB pages inside [start, start+length) (MADV_DONTNEED: they read as zero again, unbacked).</summary>
    public static unsafe void Release(byte* start, long length)
    {
        const long PageSize = 4096;
        if (!OperatingSystem.IsLinux()) return;
        var first = ((long)start + PageSize - 1) & ~(PageSize - 1);
        var end = ((long)start + length) & ~(PageSize - 1);
        if (end <= first) return;
        try
        {
            _ = Madvise((nint)first, (nuint)(end - first), MadviseDontNeed);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to ask: the old buffer is freed when collected.
        }
    }

    private const int MadviseDontNeed = 4;

    [LibraryImport("libc.so.6", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}
