using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Private pages a child still shares copy-on-write with its parent after fork (INHERITED_PAGES),
/// both sides. Checkpoint: a page the child would store is the parent's when /proc/PID/pagemap gives
/// the same page frame (PFN) at the same address in both (present in both, not swapped): it is stored
/// once, with the parent, and the child's VMA lists its address only. PFNs are visible to a reader
/// with CAP_SYS_ADMIN only (an unprivileged engine reads 0 and stores every page, as before).
/// Restore: processes get their memory in tree order, so the parent's pages are in place when the
/// child's memory stage runs: the engine copies each inherited run from the parent (/proc/PARENT/mem,
/// which reads through any protection) into the child, after an injected MADV_POPULATE_WRITE of long
/// runs (in the batch that maps the child's VMAs). The child then holds a copy: the image is deduplicated, the restored memory is not shared
/// copy-on-write again (that needs the child forked from its parent after the parent's memory is
/// restored; see docs/RESTORE.md).
/// </summary>
public static unsafe class InheritedPages
{
    private const ulong PresentBit = 1ul << 63, SwappedBit = 1ul << 62, PfnMask = (1ul << 55) - 1;
    private const int ShortRunPages = 16, BatchPages = 1024;
    private const ulong MADV_POPULATE_WRITE = 23;
    private static readonly ulong PageSize = (ulong)Environment.SystemPageSize;

    /// <summary>/proc/PID/pagemap of the child and of its parent, open for <see cref="Split"/>.</summary>
    public sealed class PagemapPair(int pid, int parentPid) : IDisposable
    {
        public int Child { get; } = Open(pid);
        public int Parent { get; } = Open(parentPid);
        public int Pid { get; } = pid;
        public int ParentPid { get; } = parentPid;

        private static int Open(int pid)
        {
            int fd = Native.open($"/proc/{pid}/pagemap", Native.O_RDONLY | 0x80000, 0);
            if (fd < 0) throw new SyscallException("open(/proc/PID/pagemap)", Native.LastErrno, pid);
            return fd;
        }

        public void Dispose()
        {
            Native.close(Child);
            Native.close(Parent);
        }
    }

    [ThreadStatic] private static ulong[]? t_childEntries, t_parentEntries;

    /// <summary>The pages of <paramref name="pages"/> (address ranges) the parent has at the same frame, and the rest.</summary>
    public static (List<ulong> Inherited, List<(ulong Start, ulong End)> Own) Split(PagemapPair pagemaps, List<(ulong Start, ulong End)> pages)
    {
        var inherited = new List<ulong>();
        var own = new List<(ulong Start, ulong End)>();
        // Called per mapping with pages: the entries' buffers are the thread's, not 16 KiB of garbage each time.
        ulong[] child = t_childEntries ??= new ulong[BatchPages], parent = t_parentEntries ??= new ulong[BatchPages];
        foreach (var (start, end) in pages)
        {
            for (ulong at = start; at < end; at += (ulong)BatchPages * PageSize)
            {
                int count = (int)Math.Min((ulong)BatchPages, (end - at) / PageSize);
                ReadEntries(pagemaps.Child, pagemaps.Pid, at, child.AsSpan(0, count));
                ReadEntries(pagemaps.Parent, pagemaps.ParentPid, at, parent.AsSpan(0, count));
                for (int i = 0; i < count; i++)
                {
                    ulong address = at + (ulong)i * PageSize;
                    if (SameFrame(child[i], parent[i])) inherited.Add(address);
                    else if (own.Count > 0 && own[^1].End == address) own[^1] = (own[^1].Start, address + PageSize);
                    else own.Add((address, address + PageSize));
                }
            }
        }
        return (inherited, own);
    }

    private static bool SameFrame(ulong child, ulong parent) =>
        (child & (PresentBit | SwappedBit)) == PresentBit && (parent & (PresentBit | SwappedBit)) == PresentBit
        && (child & PfnMask) != 0 && (child & PfnMask) == (parent & PfnMask);

    // A range of the parent that is not mapped reads as zero entries (no frame): nothing inherited there.
    private static void ReadEntries(int fd, int pid, ulong address, Span<ulong> entries)
    {
        fixed (ulong* buffer = entries)
        {
            nint n = Native.pread(fd, (byte*)buffer, (nuint)(entries.Length * 8), (long)(address / PageSize * 8));
            if (n != entries.Length * 8) throw new SyscallException("pread(/proc/PID/pagemap)", n < 0 ? Native.LastErrno : Errno.EIO, pid, $"{entries.Length} entries at 0x{address:x}");
        }
    }

    /// <summary>INHERITED_PAGES records for a VMA (none when it inherits nothing).</summary>
    public static void Write(ImageWriter writer, IReadOnlyList<ulong> addresses)
    {
        for (int from = 0; from < addresses.Count; from += (int)InheritedPagesRecord.MaxPages)
        {
            int count = Math.Min((int)InheritedPagesRecord.MaxPages, addresses.Count - from);
            byte[] bytes = new byte[count * 8];
            for (int i = 0; i < count; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), addresses[from + i]);
            writer.Write(new InheritedPagesRecord { PageCount = (uint)count, AddressBytes = (uint)bytes.Length }, bytes);
        }
    }

    // ---- restore ----

    /// <summary>
    /// MADV_POPULATE_WRITE of each long inherited run, added to <paramref name="batch"/> after the calls that
    /// map the VMAs: one call faults a run in, instead of one fault per page that <see cref="Copy"/> writes.
    /// </summary>
    public static void AddPopulates(SyscallBatch batch, RestorePlan plan)
    {
        foreach (VmaImage vma in plan.Vmas.Where(v => v.InheritedPages.Count > 0))
        {
            foreach (var (address, pages) in Runs(vma.InheritedPages))
            {
                if (pages >= ShortRunPages)
                    batch.Add($"madvise(MADV_POPULATE_WRITE) of {pages} inherited pages at 0x{address:x} of {MemoryRestore.Describe(vma)}",
                        SYS_madvise, address, (ulong)pages * PageSize, MADV_POPULATE_WRITE);
            }
        }
    }

    /// <summary>Copies every inherited page of the process from its parent (restored before it, at the same pid), once <see cref="AddPopulates"/> ran.</summary>
    public static void Copy(SyscallInjector syscalls, RestorePlan plan)
    {
        if (!plan.Vmas.Any(v => v.InheritedPages.Count > 0)) return;
        int parentPid = plan.Task.Ppid;
        int parentMem = ProcessMemory.OpenMem(parentPid, Native.O_RDONLY);
        int childMem = ProcessMemory.OpenMem(syscalls.Pid, Native.O_RDWR);
        // Sized to the longest run, and from the shared pool: a child usually inherits a few pages (libc
        // data, its stack), and a fresh 4 MiB array per process was most of a tree restore's memory stage
        // (the runtime zeroes it and faults it in).
        int longestRun = plan.Vmas.SelectMany(v => Runs(v.InheritedPages)).Max(run => run.Pages);
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(longestRun * (int)PageSize);
        try
        {
            foreach (VmaImage vma in plan.Vmas.Where(v => v.InheritedPages.Count > 0))
            {
                foreach (var (address, pages) in Runs(vma.InheritedPages))
                {
                    int length = pages * (int)PageSize;
                    ProcessMemory.ReadRanges(parentPid, parentMem, [(address, length)], buffer.AsSpan(0, length));
                    ProcessMemory.Write(childMem, syscalls.Pid, address, buffer.AsSpan(0, length));
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            Native.close(parentMem);
            Native.close(childMem);
        }
    }

    // Contiguous addresses, at most BatchPages per run.
    private static IEnumerable<(ulong Address, int Pages)> Runs(IReadOnlyList<ulong> addresses)
    {
        int start = 0;
        for (int i = 1; i <= addresses.Count; i++)
        {
            if (i < addresses.Count && addresses[i] == addresses[i - 1] + PageSize && i - start < BatchPages) continue;
            yield return (addresses[start], i - start);
            start = i;
        }
    }
}
