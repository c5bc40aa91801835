using Ckpt.Engine.Restore;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Copies saved pages from the image into the task through /proc/PID/mem: one read per
/// chunk (up to 1024 pages) and one write per run of contiguous pages.
/// </summary>
public static class PageWriter
{
    public static void WriteAll(int pid, RestorePlan plan)
    {
        int pageSize = (int)plan.Header.PageSize;
        using SafeFileHandle mem = File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.ReadWrite);
        byte[] buffer = [];
        foreach (VmaPlan vma in plan.Vmas)
        {
            foreach (PageChunk chunk in vma.Chunks)
            {
                int length = chunk.Addresses.Length * pageSize;
                if (buffer.Length < length) buffer = new byte[length];
                ReadContents(plan, chunk, buffer.AsSpan(0, length));
                WriteRuns(mem, pid, chunk.Addresses, buffer.AsSpan(0, length), pageSize);
            }
        }
    }

    private static void ReadContents(RestorePlan plan, PageChunk chunk, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            int n = RandomAccess.Read(plan.ImageFile, destination[done..], chunk.ContentsOffset + done);
            if (n <= 0) throw new IOException($"image ends inside the page contents at offset {chunk.ContentsOffset + done}");
            done += n;
        }
    }

    private static void WriteRuns(SafeFileHandle mem, int pid, ulong[] addresses, ReadOnlySpan<byte> contents, int pageSize)
    {
        int runStart = 0;
        for (int i = 1; i <= addresses.Length; i++)
        {
            bool runEnds = i == addresses.Length || addresses[i] != addresses[i - 1] + (ulong)pageSize;
            if (!runEnds) continue;
            TaskMemory.Write(mem, pid, addresses[runStart], contents.Slice(runStart * pageSize, (i - runStart) * pageSize));
            runStart = i;
        }
    }
}
