using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Copies page ranges of the target into PAGE_ARRAY chunks: up to MaxPagesPerChunk pages per
/// chunk, read with one process_vm_readv (falling back to /proc/PID/mem for protected pages)
/// straight into the image writer's block, so a page is copied once on its way to the image.
/// Pages the target shares copy-on-write with another process (pagemap: present, anonymous, not
/// exclusively mapped) are read through /proc/PID/mem instead: process_vm_readv would unshare them
/// (<see cref="ProcessMemory.ReadThroughMem"/>), so a checkpoint without --kill would leave a forked
/// tree using twice the memory it did.
/// </summary>
public sealed class PageStreamer : IDisposable
{
    private readonly int _pid;
    private readonly ImageWriter _writer;
    private readonly int _memFd;
    private readonly int _pagemapFd;
    // The thread's, not the instance's: a tree's checkpoint makes one streamer per process, and two fresh
    // 8 KiB arrays each cost their page faults (about 10 us each in a VM).
    private readonly ulong[] _entries = t_entries ??= new ulong[PageArrayRecord.MaxPagesPerChunk];
    private readonly int _pageSize = Environment.SystemPageSize;
    private readonly ulong[] _addresses = t_addresses ??= new ulong[PageArrayRecord.MaxPagesPerChunk];
    [ThreadStatic] private static ulong[]? t_entries, t_addresses;
    private readonly List<(ulong Address, int Length)> _ranges = [];

    public PageStreamer(int pid, ImageWriter writer)
    {
        _pid = pid;
        _writer = writer;
        _memFd = ProcessMemory.OpenMem(pid, Native.O_RDONLY);
        _pagemapFd = Native.open($"/proc/{pid}/pagemap", Native.O_RDONLY | Native.O_CLOEXEC, 0);
        if (_pagemapFd < 0)
        {
            int errno = Native.LastErrno;
            Native.close(_memFd);
            throw new SyscallException("open(/proc/PID/pagemap)", errno, pid);
        }
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

    // Adjacent pages of the same kind (exclusive or shared copy-on-write) become one range; exclusive
    // ranges go to process_vm_readv together, shared ones through /proc/PID/mem.
    private void Flush(int count, bool dropZeroPages)
    {
        MarkShared(count);
        _ranges.Clear();
        var shared = new List<bool>();
        for (int i = 0; i < count; i++)
        {
            bool isShared = IsSharedCopyOnWrite(_entries[i]);
            if (_ranges.Count > 0 && _ranges[^1].Address + (ulong)_ranges[^1].Length == _addresses[i] && shared[^1] == isShared)
                _ranges[^1] = (_ranges[^1].Address, _ranges[^1].Length + _pageSize);
            else
            {
                _ranges.Add((_addresses[i], _pageSize));
                shared.Add(isShared);
            }
        }
        Span<byte> contents = _writer.BeginPageArray(_addresses.AsSpan(0, count), _pageSize);
        var ranges = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ranges);
        int offset = 0;
        for (int first = 0; first < ranges.Length;)
        {
            int end = first + 1;
            while (end < ranges.Length && shared[end] == shared[first]) end++;
            int length = 0;
            foreach (var range in ranges[first..end]) length += range.Length;
            if (shared[first])
            {
                foreach (var (address, rangeLength) in ranges[first..end])
                {
                    ProcessMemory.ReadThroughMem(_memFd, _pid, address, contents.Slice(offset, rangeLength));
                    offset += rangeLength;
                }
            }
            else
            {
                ProcessMemory.ReadRanges(_pid, _memFd, ranges[first..end], contents.Slice(offset, length));
                offset += length;
            }
            first = end;
        }
        _writer.EndPageArray(dropZeroPages);
    }

    private const ulong PresentBit = 1ul << 63, FileOrSharedBit = 1ul << 61, ExclusiveBit = 1ul << 56;

    // A present anonymous page of a private mapping that is not exclusively mapped: shared copy-on-write.
    private static bool IsSharedCopyOnWrite(ulong entry) => (entry & (PresentBit | FileOrSharedBit | ExclusiveBit)) == PresentBit;

    // The pagemap entries of the chunk's pages (read per run of adjacent pages).
    private unsafe void MarkShared(int count)
    {
        for (int start = 0; start < count;)
        {
            int end = start + 1;
            while (end < count && _addresses[end] == _addresses[end - 1] + (ulong)_pageSize) end++;
            fixed (ulong* entries = &_entries[start])
            {
                nint bytes = (end - start) * 8;
                nint n = Native.pread(_pagemapFd, (byte*)entries, (nuint)bytes, (long)(_addresses[start] / (ulong)_pageSize * 8));
                if (n != bytes) throw new SyscallException("pread(/proc/PID/pagemap)", n < 0 ? Native.LastErrno : Errno.EIO, _pid, $"{end - start} entries at 0x{_addresses[start]:x}");
            }
            start = end;
        }
    }

    public void Dispose()
    {
        Native.close(_memFd);
        Native.close(_pagemapFd);
    }
}
