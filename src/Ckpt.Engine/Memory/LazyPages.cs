using System.Collections;
using Ckpt.Image.Model;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Memory;

/// <summary>
/// The image pages of one address space that a lazy restore has not filled yet: runs of contiguous
/// pages (where they go, where their contents are in the image), each with a bitmap of the pages
/// still missing. Kept in address order, which is the order the background pass fills them in.
/// The process may change its address space meanwhile (userfaultfd events): pages it unmaps or
/// discards are dropped (a fault there must read zeros, as without a lazy restore), and a remap
/// moves the pending pages with the mapping.
/// A mapping whose page addresses the image model did not read (<see cref="DeferredPageChunk"/>: the
/// restore did not wait for them) is an unread mapping: its addresses are read from the image and
/// checked when a fault or the background pass first needs them (<see cref="ReadUnread"/>); a damaged
/// chunk then throws, and the page server kills the process rather than answer with a wrong page.
/// </summary>
public sealed class LazyPages
{
    private const int PageSize = 4096;
    private readonly List<Run> _runs;
    private readonly List<UnreadMapping> _unread;
    private readonly SafeFileHandle? _image;

    /// <summary>A mapping [Start, End) whose chunks' addresses are still in the image only.</summary>
    public sealed record UnreadMapping(ulong Start, ulong End, IReadOnlyList<DeferredPageChunk> Chunks)
    {
        public long Pages => Chunks.Sum(c => (long)c.PageCount);
    }

    /// <param name="runs">pages whose addresses are known: contiguous runs (address, pages, image offset of their contents)</param>
    /// <param name="unread">mappings whose addresses are read from <paramref name="image"/> when first needed</param>
    public LazyPages(IEnumerable<(ulong Address, int Pages, long ContentsOffset)> runs, IEnumerable<UnreadMapping>? unread = null, SafeFileHandle? image = null)
    {
        _runs = runs.Select(r => new Run(r.Address, r.ContentsOffset, Missing(r.Pages), 0)).OrderBy(r => r.Address).ToList();
        _unread = (unread ?? []).OrderBy(u => u.Start).ToList();
        if (_unread.Count > 0 && image is null) throw new ArgumentException("unread mappings need the image to read their addresses from", nameof(image));
        _image = image;
        RemainingPages = _runs.Sum(r => r.Pages) + _unread.Sum(u => u.Pages);
    }

    private LazyPages(List<Run> runs, List<UnreadMapping> unread, SafeFileHandle? image, long remaining)
    {
        _runs = runs;
        _unread = unread;
        _image = image;
        RemainingPages = remaining;
    }

    public long RemainingPages { get; private set; }

    /// <summary>A copy for the child of a fork: it misses the same pages at the same addresses.</summary>
    public LazyPages Clone() => new(_runs.Select(r => r.Copy()).ToList(), [.. _unread], _image, RemainingPages);

    /// <summary>The contiguous runs of a chunk's pages: address, page count, image offset of their contents.</summary>
    public static IEnumerable<(ulong Address, int Pages, long ContentsOffset)> RunsOf(ulong[] addresses, long contentsOffset)
    {
        int start = 0;
        for (int i = 1; i <= addresses.Length; i++)
        {
            if (i < addresses.Length && addresses[i] == addresses[i - 1] + PageSize) continue;
            yield return (addresses[start], i - start, contentsOffset + (long)start * PageSize);
            start = i;
        }
    }

    /// <summary>
    /// Reads (and checks) the addresses of every unread mapping that meets [start, end): from then on
    /// their pages are runs like the others. An <see cref="Image.ImageFormatException"/> for a damaged chunk.
    /// </summary>
    public void ReadUnread(ulong start, ulong end)
    {
        for (int i = 0; i < _unread.Count; i++)
        {
            UnreadMapping mapping = _unread[i];
            if (mapping.End <= start || mapping.Start >= end) continue;
            var runs = new List<Run>();
            foreach (DeferredPageChunk chunk in mapping.Chunks)
                foreach (var (address, pages, contentsOffset) in RunsOf(chunk.ReadAddresses(_image!, mapping.Start, mapping.End), chunk.ContentsOffset))
                    runs.Add(new Run(address, contentsOffset, Missing(pages), 0));
            _unread.RemoveAt(i--);
            _runs.AddRange(runs);
            _runs.Sort((a, b) => a.Address.CompareTo(b.Address));
        }
    }

    /// <summary>
    /// The pending pages as bytes, for the page server that takes over from the engine that restored
    /// the process (<see cref="LazyHandover"/>): per run its address, contents offset, page count
    /// and bitmap of missing pages.
    /// </summary>
    public void WriteTo(BinaryWriter writer)
    {
        writer.Write(_unread.Count);
        foreach (UnreadMapping mapping in _unread)
        {
            writer.Write(mapping.Start);
            writer.Write(mapping.End);
            writer.Write(mapping.Chunks.Count);
            foreach (DeferredPageChunk chunk in mapping.Chunks)
            {
                writer.Write(chunk.PageCount);
                writer.Write(chunk.AddressesOffset);
                writer.Write(chunk.ContentsOffset);
                writer.Write(chunk.RecordOffset);
            }
        }
        writer.Write(_runs.Count);
        writer.Write(RemainingPages);
        byte[] bits = [];
        foreach (Run run in _runs)
        {
            writer.Write(run.Address);
            writer.Write(run.ContentsOffset);
            writer.Write(run.Pages);
            writer.Write(run.Filled);
            int length = (run.Pages + 7) / 8;
            if (bits.Length < length) bits = new byte[length];
            Array.Clear(bits, 0, length);
            run.Missing.CopyTo(bits, 0);
            writer.Write(bits, 0, length);
        }
    }

    /// <summary>The pending pages written by <see cref="WriteTo"/> (by the engine that restored the process: trusted); unread addresses come from <paramref name="image"/>.</summary>
    public static LazyPages ReadFrom(BinaryReader reader, SafeFileHandle image)
    {
        var unread = new List<UnreadMapping>();
        int mappings = reader.ReadInt32();
        for (int m = 0; m < mappings; m++)
        {
            ulong start = reader.ReadUInt64(), end = reader.ReadUInt64();
            var chunks = new DeferredPageChunk[reader.ReadInt32()];
            for (int c = 0; c < chunks.Length; c++)
                chunks[c] = new DeferredPageChunk(reader.ReadInt32(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64());
            unread.Add(new UnreadMapping(start, end, chunks));
        }
        int count = reader.ReadInt32();
        long remaining = reader.ReadInt64();
        var runs = new List<Run>(count);
        for (int i = 0; i < count; i++)
        {
            ulong address = reader.ReadUInt64();
            long contentsOffset = reader.ReadInt64();
            int pages = reader.ReadInt32(), filled = reader.ReadInt32();
            var missing = new BitArray(reader.ReadBytes((pages + 7) / 8)) { Length = pages };
            runs.Add(new Run(address, contentsOffset, missing, filled));
        }
        return new LazyPages(runs, unread, image, remaining);
    }

    /// <summary>A stretch of missing pages: destination, page count, image offset of the first page's contents.</summary>
    public readonly record struct Stretch(ulong Address, int Pages, long ContentsOffset)
    {
        public ulong Length => (ulong)Pages * PageSize;
    }

    /// <summary>
    /// The missing pages around <paramref name="address"/> within its run and within the aligned window
    /// of <paramref name="windowPages"/> pages holding it; null when the image has no missing page there.
    /// </summary>
    public Stretch? Around(ulong address, int windowPages)
    {
        ulong page = address & ~(ulong)(PageSize - 1);
        ReadUnread(page, page + PageSize);
        Run? run = RunHolding(page);
        if (run is null) return null;
        int index = run.IndexOf(page);
        if (!run.Missing[index]) return null;
        int windowStart = index - (int)(((page / PageSize) % (ulong)windowPages));
        int first = index, last = index;
        while (first > Math.Max(0, windowStart) && run.Missing[first - 1]) first--;
        while (last + 1 < Math.Min(run.Pages, windowStart + windowPages) && run.Missing[last + 1]) last++;
        return run.StretchOf(first, last - first + 1);
    }

    /// <summary>The first missing stretch in address order, at most <paramref name="maxPages"/> long; null when all are in.</summary>
    public Stretch? Next(int maxPages)
    {
        // The pass reaches an unread mapping: its addresses first (one mapping per call, in address order).
        if (_unread.Count > 0 && _runs.FirstOrDefault(r => r.Filled < r.Pages) is var firstMissing && (firstMissing is null || _unread[0].Start < firstMissing.Address))
            ReadUnread(_unread[0].Start, _unread[0].End);
        foreach (Run run in _runs)
        {
            if (run.Filled == run.Pages) continue;
            int first = run.FirstMissing();
            int last = first;
            while (last + 1 < run.Pages && last + 1 - first < maxPages && run.Missing[last + 1]) last++;
            return run.StretchOf(first, last - first + 1);
        }
        return null;
    }

    /// <summary>Marks <paramref name="pages"/> pages from <paramref name="address"/> as in (filled, or found present).</summary>
    public void MarkFilled(ulong address, int pages)
    {
        for (int i = 0; i < pages; i++)
        {
            ulong page = address + (ulong)i * PageSize;
            Run? run = RunHolding(page);
            if (run is null) continue;
            int index = run.IndexOf(page);
            if (!run.Missing[index]) continue;
            run.Missing[index] = false;
            run.Filled++;
            RemainingPages--;
        }
    }

    /// <summary>The process unmapped or discarded [start, end): those pages are no longer the image's.</summary>
    public void Drop(ulong start, ulong end)
    {
        ReadUnread(start, end);
        foreach (Run run in _runs)
        {
            if (run.End <= start || run.Address >= end) continue;
            ulong from = Math.Max(start, run.Address), to = Math.Min(end, run.End);
            MarkFilled(from, (int)((to - from) / PageSize));
        }
    }

    /// <summary>The process moved [from, from + length) to <paramref name="to"/> (mremap): the missing pages move with it.</summary>
    public void Move(ulong from, ulong to, ulong length)
    {
        ulong end = from + length;
        ReadUnread(from, end);
        ReadUnread(to, to + length);
        var moved = new List<Run>();
        foreach (Run run in _runs.ToList())
        {
            if (run.End <= from || run.Address >= end) continue;
            _runs.Remove(run);
            // Split the run at the moved range's edges; the middle part moves.
            ulong middleStart = Math.Max(from, run.Address), middleEnd = Math.Min(end, run.End);
            if (run.Address < middleStart) _runs.Add(run.Slice(run.Address, middleStart));
            if (middleEnd < run.End) _runs.Add(run.Slice(middleEnd, run.End));
            Run middle = run.Slice(middleStart, middleEnd);
            middle.Address = middle.Address - from + to;
            moved.Add(middle);
        }
        // Whatever the image had at the destination was unmapped by the move.
        Drop(to, to + length);
        _runs.AddRange(moved);
        _runs.Sort((a, b) => a.Address.CompareTo(b.Address));
    }

    private Run? RunHolding(ulong page)
    {
        int low = 0, high = _runs.Count - 1;
        while (low <= high)
        {
            int middle = (low + high) / 2;
            Run run = _runs[middle];
            if (page < run.Address) high = middle - 1;
            else if (page >= run.End) low = middle + 1;
            else return run;
        }
        return null;
    }

    private static BitArray Missing(int pages) => new(pages, true);

    private sealed class Run(ulong address, long contentsOffset, BitArray missing, int filled)
    {
        private int _scanFrom; // every page before it is in: the pass over a run never rescans them

        public ulong Address { get; set; } = address;
        public long ContentsOffset { get; } = contentsOffset;
        public BitArray Missing { get; } = missing;
        public int Filled { get; set; } = filled;
        public int Pages => Missing.Length;
        public ulong End => Address + (ulong)Pages * PageSize;
        public int IndexOf(ulong page) => (int)((page - Address) / PageSize);

        public Run Copy() => new(Address, ContentsOffset, new BitArray(Missing), Filled);

        public Stretch StretchOf(int first, int pages) => new(Address + (ulong)first * PageSize, pages, ContentsOffset + (long)first * PageSize);

        public int FirstMissing()
        {
            while (_scanFrom < Pages && !Missing[_scanFrom]) _scanFrom++;
            return _scanFrom < Pages ? _scanFrom : -1;
        }

        public Run Slice(ulong start, ulong end)
        {
            int first = IndexOf(start), count = (int)((end - start) / PageSize), filled = 0;
            var slice = new BitArray(count);
            for (int i = 0; i < count; i++)
            {
                slice[i] = Missing[first + i];
                if (!slice[i]) filled++;
            }
            return new Run(start, ContentsOffset + (long)first * PageSize, slice, filled);
        }
    }
}
