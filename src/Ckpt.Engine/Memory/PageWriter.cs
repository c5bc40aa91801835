using Ckpt.Image.Model;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Puts the saved pages back into the task. A long run of contiguous pages is read by the task
/// itself: madvise(MADV_POPULATE_WRITE) faults the run in with one call, then pread64 copies it
/// from the image (both in a <see cref="SyscallBatch"/> with the other runs' calls) (opened inside the task by <see cref="AddImageOpen"/>
/// while the task still has the engine's credentials, and closed after the memory). That is
/// the restore's hardware floor, one copy from the page cache and no fault per page, where writing
/// through /proc/PID/mem costs a second copy and a page-by-page walk. A short run is read the same
/// way without the madvise (its few faults cost less than the call); without the image in the task, it is
/// written through /proc/PID/mem.
/// When the task may not open the engine's descriptor (an unprivileged restore: the engine has file
/// capabilities the task lacks, so the kernel refuses it /proc/ENGINE/fd), long runs are faulted in
/// by the task and written through /proc/PID/mem as well.
/// </summary>
public static class PageWriter
{
    private const int ShortRunPages = 16;
    private const ulong MADV_POPULATE_WRITE = 23;
    private const ulong O_RDONLY = 0, O_CLOEXEC = 0x80000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    /// <summary>
    /// The task's share of the pages, added to <paramref name="batch"/> after the calls that map their
    /// VMAs (one ptrace stop for both): per long run its MADV_POPULATE_WRITE and, with the image open in
    /// the task, its pread64. Call <see cref="PendingPages.Finish"/> with the batch's results: it completes
    /// short reads and writes the short runs (and, without the image in the task, the long ones) through
    /// /proc/PID/mem.
    /// </summary>
    /// <param name="imageFd">the image, open in the task (<see cref="AddImageOpen"/>), or -1: pages through /proc/PID/mem</param>
    /// <param name="lazy">VMAs left to the page server of a lazy restore (their pages are not written here)</param>
    public static PendingPages AddReads(SyscallBatch batch, SyscallInjector syscalls, RestorePlan plan, long imageFd, Func<VmaImage, bool>? lazy = null)
    {
        int pageSize = (int)plan.Header.PageSize;
        var pending = new PendingPages(syscalls, plan, imageFd, pageSize);
        foreach (VmaImage vma in plan.Vmas)
        {
            if (lazy?.Invoke(vma) == true) continue;
            // Never a mapping left with zeros where the image has pages: only a page server reads deferred addresses.
            if (vma.DeferredChunks.Count > 0)
                throw new InvalidOperationException($"{MemoryRestore.Describe(vma)}: its page addresses were left for a lazy restore's page server");
            foreach (PageChunk chunk in vma.Chunks)
            {
                foreach (PageRun run in Runs(chunk, pageSize))
                {
                    bool shortRun = run.Pages < ShortRunPages;
                    if (imageFd < 0 && shortRun)
                    {
                        pending.ThroughMem.Add(run);
                        continue;
                    }
                    ulong length = (ulong)run.Pages * (ulong)pageSize;
                    string where = Where(vma, run);
                    // One call faults a long run in, instead of one fault per page written; a short run's
                    // few faults cost less than the call (the pread takes them).
                    if (!shortRun) batch.Add($"madvise(MADV_POPULATE_WRITE) of {where}", SYS_madvise, run.Address, length, MADV_POPULATE_WRITE);
                    if (imageFd < 0) pending.ThroughMem.Add(run);
                    else pending.Reads.Add((vma, run, batch.Add($"pread64 of {where}", SYS_pread64, (ulong)imageFd, run.Address, length, (ulong)run.ContentsOffset)));
                }
            }
        }
        return pending;
    }

    /// <summary>What <see cref="AddReads"/> left for after its batch ran.</summary>
    public sealed class PendingPages(SyscallInjector syscalls, RestorePlan plan, long imageFd, int pageSize)
    {
        internal readonly List<(VmaImage Vma, PageRun Run, int Entry)> Reads = [];
        internal readonly List<PageRun> ThroughMem = [];

        /// <param name="results">the results of the batch the reads were added to</param>
        public void Finish(long[] results)
        {
            foreach (var (vma, run, entry) in Reads) FinishShortRead(vma, run, (ulong)results[entry]);
            if (ThroughMem.Count == 0) return;
            int mem = ProcessMemory.OpenMem(syscalls.Pid, Native.O_RDWR);
            byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(ThroughMem.Max(r => r.Pages) * pageSize);
            try
            {
                foreach (PageRun run in ThroughMem) WriteThroughMem(plan, mem, syscalls.Pid, run, pageSize, buffer);
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                Native.close(mem);
            }
        }

        // The kernel may end a read early: the rest by injected calls; the image ending inside a run is an error naming it.
        private void FinishShortRead(VmaImage vma, PageRun run, ulong done)
        {
            ulong length = (ulong)run.Pages * (ulong)pageSize;
            string where = Where(vma, run);
            while (done < length)
            {
                if (done == 0) throw new IOException($"the image ends inside the contents of {where} (offset {run.ContentsOffset + (long)done})");
                long read = syscalls.Call($"pread64 of {where}", SYS_pread64, (ulong)imageFd, run.Address + done, length - done, (ulong)run.ContentsOffset + done);
                if (read == 0) throw new IOException($"the image ends inside the contents of {where} (offset {run.ContentsOffset + (long)done})");
                done += (ulong)read;
            }
        }
    }

    /// <summary>Contiguous pages of a chunk: where they go, how many, where their contents are in the image.</summary>
    internal readonly record struct PageRun(ulong Address, int Pages, long ContentsOffset);

    private static IEnumerable<PageRun> Runs(PageChunk chunk, int pageSize)
    {
        ulong[] addresses = chunk.Addresses;
        int runStart = 0;
        for (int i = 1; i <= addresses.Length; i++)
        {
            if (i < addresses.Length && addresses[i] == addresses[i - 1] + (ulong)pageSize) continue;
            yield return new PageRun(addresses[runStart], i - runStart, chunk.ContentsOffset + (long)runStart * pageSize);
            runStart = i;
        }
    }

    /// <summary>
    /// The engine's handle, reopened in the task through /proc (works for a spooled, unlinked stdin
    /// image too): done before the task gets the recorded credentials, which may not read the
    /// image (root's 0600 file) nor open /proc of the engine. The caller closes it after the memory.
    /// -1 when the kernel refuses the task access to the engine's descriptors (EACCES: an
    /// unprivileged engine with file capabilities the task lacks); the pages then go through /proc/PID/mem
    /// (<see cref="ImageFdFrom"/>). Added to a batch (its path in <paramref name="scratch"/>); returns its entry.
    /// </summary>
    public static int AddImageOpen(SyscallBatch batch, RestorePlan plan, ScratchArea scratch) =>
        batch.AddMayFail("openat of the image to read its pages", SYS_openat, AT_FDCWD, scratch.PutString(ImagePathForTask(plan)), O_RDONLY | O_CLOEXEC, 0);

    /// <summary>The descriptor from that open's result, -1 for EACCES; any other failure throws.</summary>
    public static long ImageFdFrom(long result, int pid, RestorePlan plan)
    {
        if (result == -Errno.EACCES) return -1;
        if (result < 0) throw new SyscallException($"openat of the image ({ImagePathForTask(plan)}) to read its pages", (int)-result, pid, "injected into the task");
        return result;
    }

    private static string ImagePathForTask(RestorePlan plan) => $"/proc/{Environment.ProcessId}/fd/{plan.ImageFile.DangerousGetHandle()}";

    private static string Where(VmaImage vma, PageRun run) => $"{run.Pages} pages at 0x{run.Address:x} of {MemoryRestore.Describe(vma)}";

    private static void WriteThroughMem(RestorePlan plan, int mem, int pid, PageRun run, int pageSize, byte[] buffer)
    {
        int length = run.Pages * pageSize;
        Span<byte> contents = buffer.AsSpan(0, length);
        for (int done = 0; done < length;)
        {
            int n = RandomAccess.Read(plan.ImageFile, contents[done..], run.ContentsOffset + done);
            if (n <= 0) throw new IOException($"image ends inside the page contents at offset {run.ContentsOffset + done}");
            done += n;
        }
        ProcessMemory.Write(mem, pid, run.Address, contents);
    }
}
