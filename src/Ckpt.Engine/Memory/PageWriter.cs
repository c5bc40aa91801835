using Ckpt.Image.Model;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Puts the saved pages back into the task. A long run of contiguous pages is read by the task
/// itself: an injected madvise(MADV_POPULATE_WRITE) faults the run in with one call, then an
/// injected pread64 copies it from the image (opened inside the task for this step only). That is
/// the restore's hardware floor, one copy from the page cache and no fault per page, where writing
/// through /proc/PID/mem costs a second copy and a page-by-page walk. A short run is written
/// through /proc/PID/mem: an injected call costs about as much as writing a few pages.
/// </summary>
public static class PageWriter
{
    private const int ShortRunPages = 16;
    private const ulong MADV_POPULATE_WRITE = 23;
    private const ulong O_RDONLY = 0, O_CLOEXEC = 0x80000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    /// <param name="lazy">VMAs left to the page server of a lazy restore (their pages are not written here)</param>
    public static void WriteAll(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, Func<VmaImage, bool>? lazy = null)
    {
        int pageSize = (int)plan.Header.PageSize;
        int mem = ProcessMemory.OpenMem(syscalls.Pid, Native.O_RDWR);
        long imageFd = -1;
        byte[] buffer = [];
        try
        {
            foreach (VmaImage vma in plan.Vmas)
            {
                if (lazy?.Invoke(vma) == true) continue;
                foreach (PageChunk chunk in vma.Chunks)
                {
                    foreach (PageRun run in Runs(chunk, pageSize))
                    {
                        if (run.Pages < ShortRunPages)
                        {
                            WriteThroughMem(plan, mem, syscalls.Pid, run, pageSize, ref buffer);
                            continue;
                        }
                        if (imageFd < 0) imageFd = OpenImageInTask(syscalls, plan, scratch);
                        ReadInTask(syscalls, vma, imageFd, run, pageSize);
                    }
                }
            }
        }
        finally
        {
            if (imageFd >= 0) syscalls.CallRaw(SYS_close, (ulong)imageFd);
            Native.close(mem);
        }
    }

    /// <summary>Contiguous pages of a chunk: where they go, how many, where their contents are in the image.</summary>
    private readonly record struct PageRun(ulong Address, int Pages, long ContentsOffset);

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

    // The engine's handle, reopened through /proc: works for a spooled (unlinked) stdin image too.
    private static long OpenImageInTask(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        string path = $"/proc/{Environment.ProcessId}/fd/{plan.ImageFile.DangerousGetHandle()}";
        scratch.Reset();
        return syscalls.Call($"openat of the image ({path}) to read its pages", SYS_openat, AT_FDCWD, scratch.PutString(path), O_RDONLY | O_CLOEXEC, 0);
    }

    private static void ReadInTask(SyscallInjector syscalls, VmaImage vma, long imageFd, PageRun run, int pageSize)
    {
        ulong length = (ulong)run.Pages * (ulong)pageSize;
        string where = $"{run.Pages} pages at 0x{run.Address:x} of {MemoryRestore.Describe(vma)}";
        syscalls.Call($"madvise(MADV_POPULATE_WRITE) of {where}", SYS_madvise, run.Address, length, MADV_POPULATE_WRITE);
        for (ulong done = 0; done < length;)
        {
            long read = syscalls.Call($"pread64 of {where}", SYS_pread64, (ulong)imageFd, run.Address + done, length - done, (ulong)run.ContentsOffset + done);
            if (read == 0) throw new IOException($"the image ends inside the contents of {where} (offset {run.ContentsOffset + (long)done})");
            done += (ulong)read;
        }
    }

    private static void WriteThroughMem(RestorePlan plan, int mem, int pid, PageRun run, int pageSize, ref byte[] buffer)
    {
        int length = run.Pages * pageSize;
        if (buffer.Length < length) buffer = new byte[length];
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
