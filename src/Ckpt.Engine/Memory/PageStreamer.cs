using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Copies page ranges of the target into PAGE_ARRAY chunks: up to MaxPagesPerChunk pages per
/// chunk, read with one process_vm_readv (falling back to /proc/PID/mem for protected pages)
/// straight into the image writer's block, so a page is copied once on its way to the image.
/// </summary>
public sealed class PageStreamer : IDisposable
{
    private readonly int _pid;
    private readonly ImageWriter _writer;
    private readonly int _memFd;
    private readonly int _pageSize = Environment.SystemPageSize;
    private readonly ulong[] _addresses = new ulong[PageArrayRecord.MaxPagesPerChunk];
    private readonly List<(ulong Address, int Length)> _ranges = [];

    public PageStreamer(int pid, ImageWriter writer)
    {
        _pid = pid;
        _writer = writer;
        _memFd = ProcessMemory.OpenMem(pid, Native.O_RDONLY);
    }

    /// <param name="dropZeroPages">leave all-zero pages out (where the restored mapping reads as zeros without them)</param>
    /// <param name="chunkRead">pages read so far in this call, after every chunk</param>
    public void Write(IReadOnlyList<(ulong Start, ulong End)> regions, bool dropZeroPages, Action<int> chunkRead)
    {
        int count = 0;
        foreach (var (start, end) in regions)
        {
            for (ulong page = start; page < end; page += (ulong)_pageSize)
            {
                _addresses[count++] = page;
                if (count == _addresses.Length)
                {
                    Flush(count, dropZeroPages);
                    chunkRead(count);
                    count = 0;
                }
            }
        }
        if (count > 0)
        {
            Flush(count, dropZeroPages);
            chunkRead(count);
        }
    }

    // Adjacent pages become one iovec, so a contiguous chunk is a single remote range.
    private void Flush(int count, bool dropZeroPages)
    {
        _ranges.Clear();
        for (int i = 0; i < count; i++)
        {
            if (_ranges.Count > 0 && _ranges[^1].Address + (ulong)_ranges[^1].Length == _addresses[i])
                _ranges[^1] = (_ranges[^1].Address, _ranges[^1].Length + _pageSize);
            else
                _ranges.Add((_addresses[i], _pageSize));
        }
        Span<byte> contents = _writer.BeginPageArray(_addresses.AsSpan(0, count), _pageSize);
        ProcessMemory.ReadRanges(_pid, _memFd, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ranges), contents);
        _writer.EndPageArray(dropZeroPages);
    }

    public void Dispose() => Native.close(_memFd);
}
