using System.Runtime.InteropServices;
using static Ckpt.Engine.Linux.Native;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Which pages of a range hold data, from the PAGEMAP_SCAN ioctl on /proc/PID/pagemap (kernel 6.7+):
/// present or swapped pages, optionally excluding file-backed pages and the shared zero page. One
/// call covers a whole VMA without reading 8 bytes per page, so an untouched 64 GiB reservation costs
/// nothing. API: <c>using var scan = PageScan.Open(pid)</c>; <c>scan.Populated(start, end, anonymousOnly)</c>.
/// </summary>
public sealed unsafe class PageScan : IDisposable
{
    private const ulong PAGEMAP_SCAN = 0xC0606610; // _IOWR('f', 16, struct pm_scan_arg)
    private const ulong PAGE_IS_FILE = 1 << 2, PAGE_IS_PRESENT = 1 << 3, PAGE_IS_SWAPPED = 1 << 4, PAGE_IS_PFNZERO = 1 << 5;
    private const int RegionBatch = 512;

    private readonly int _pid;
    private readonly int _fd;
    [ThreadStatic] private static PageRegion[]? t_regions;

    private PageScan(int pid, int fd) => (_pid, _fd) = (pid, fd);

    public static PageScan Open(int pid)
    {
        int fd = open($"/proc/{pid}/pagemap", O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) throw new SyscallException("open(/proc/PID/pagemap)", LastErrno, pid);
        return new PageScan(pid, fd);
    }

    /// <summary>
    /// Page ranges in [start, end) with contents. anonymousOnly drops pages that are the backing
    /// file's (or shmem's) own and the zero page: what a private mapping changed itself.
    /// </summary>
    public List<(ulong Start, ulong End)> Populated(ulong start, ulong end, bool anonymousOnly)
    {
        var result = new List<(ulong, ulong)>();
        // Called for every mapping of every process: one vector per thread, not 12 KiB of garbage per call.
        PageRegion[] regions = t_regions ??= new PageRegion[RegionBatch];
        ulong excluded = anonymousOnly ? PAGE_IS_FILE | PAGE_IS_PFNZERO : PAGE_IS_PFNZERO;
        while (start < end)
        {
            fixed (PageRegion* vector = regions)
            {
                var arg = new ScanArgument
                {
                    Size = (ulong)sizeof(ScanArgument), Start = start, End = end, Vector = (ulong)vector, VectorLength = RegionBatch,
                    CategoryInverted = excluded, CategoryMask = excluded,
                    CategoryAnyOfMask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED, ReturnMask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                };
                int count = ioctl(_fd, PAGEMAP_SCAN, &arg);
                if (count < 0) throw new SyscallException("ioctl(/proc/PID/pagemap, PAGEMAP_SCAN)", LastErrno, _pid, $"range 0x{start:x}-0x{end:x}");
                for (int i = 0; i < count; i++) result.Add((regions[i].Start, regions[i].End));
                if (arg.WalkEnd <= start) throw new InvalidOperationException($"PAGEMAP_SCAN of process {_pid} made no progress at 0x{start:x}");
                start = arg.WalkEnd;
            }
        }
        return result;
    }

    public void Dispose() => close(_fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct ScanArgument
    {
        public ulong Size, Flags, Start, End, WalkEnd, Vector, VectorLength, MaxPages;
        public ulong CategoryInverted, CategoryMask, CategoryAnyOfMask, ReturnMask;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PageRegion
    {
        public ulong Start, End, Categories;
    }
}
