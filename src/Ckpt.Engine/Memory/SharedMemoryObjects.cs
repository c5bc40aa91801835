using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Memory;

/// <summary>
/// The shared anonymous memory objects of the whole tree (checkpoint side), one per shmem inode
/// whatever processes map it: each gets an objref and a SHARED_MEMORY record before its first VMA in
/// the image, and each of its pages is stored once, with the first VMA (in inspection order, which is
/// the image's tree order) whose range covers it. Pages are found through the object itself: the
/// engine opens /proc/PID/map_files/START-END (the shmem file) and asks SEEK_DATA/SEEK_HOLE, so a
/// page one process wrote and another never touched is found in either's view, without reading or
/// faulting anything in the target.
/// </summary>
public sealed partial class SharedMemoryObjects
{
    private static readonly ulong PageSize = (ulong)Environment.SystemPageSize;
    private readonly Dictionary<ulong, SharedMemoryObject> _byInode = [];
    private readonly HashSet<int> _written = [];

    /// <summary>The object a SharedAnon mapping of <paramref name="pid"/> shows, and the addresses of its pages this mapping stores.</summary>
    public (int ObjRef, List<(ulong Start, ulong End)> Pages) Inspect(int pid, MapsEntry map, Func<int> newObjRef)
    {
        string path = $"/proc/{pid}/map_files/{map.Start:x}-{map.End:x}";
        int fd = Native.open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) throw new SyscallException("open", Native.LastErrno, pid, $"{path} (shared memory at 0x{map.Start:x})");
        try
        {
            if (Native.fstatat(fd, "", out Native.Stat stat, AT_EMPTY_PATH) != 0) throw new SyscallException("fstat", Native.LastErrno, pid, path);
            if (!_byInode.TryGetValue(stat.Inode, out SharedMemoryObject? shared))
            {
                ulong sizePages = ((ulong)stat.Size + PageSize - 1) / PageSize;
                _byInode[stat.Inode] = shared = new SharedMemoryObject(new SharedMemoryRecord { ObjRef = newObjRef(), SizePages = sizePages, Inode = stat.Inode });
            }
            ulong firstPage = map.Offset / PageSize, pages = (map.End - map.Start) / PageSize;
            var present = DataPages(fd, firstPage, firstPage + pages, pid, path);
            var addresses = shared.NotYetStored(present).Select(r => (map.Start + (r.Start - firstPage) * PageSize, map.Start + (r.End - firstPage) * PageSize)).ToList();
            return (shared.Record.ObjRef, addresses);
        }
        finally
        {
            Native.close(fd);
        }
    }

    /// <summary>Before the first VMA of an object in the image: its SHARED_MEMORY record.</summary>
    public void WriteIfFirstUse(ImageWriter writer, int objRef)
    {
        if (!_written.Add(objRef)) return;
        writer.Write(_byInode.Values.Single(o => o.Record.ObjRef == objRef).Record);
    }

    /// <summary>The object's pages in [first, end) that hold data (page cache or swap), as page ranges.</summary>
    private static List<(ulong Start, ulong End)> DataPages(int fd, ulong first, ulong end, int pid, string path)
    {
        var ranges = new List<(ulong Start, ulong End)>();
        for (ulong at = first; at < end;)
        {
            long data = lseek(fd, (long)(at * PageSize), SEEK_DATA);
            if (data < 0 && Marshal.GetLastPInvokeError() == ENXIO) break; // only a hole is left
            if (data < 0) throw new SyscallException("lseek(SEEK_DATA)", Marshal.GetLastPInvokeError(), pid, path);
            long hole = lseek(fd, data, SEEK_HOLE);
            if (hole < 0) throw new SyscallException("lseek(SEEK_HOLE)", Marshal.GetLastPInvokeError(), pid, path);
            ulong from = (ulong)data / PageSize, to = Math.Min(((ulong)hole + PageSize - 1) / PageSize, end);
            if (from >= end) break;
            if (to > from) ranges.Add((from, to));
            at = Math.Max(to, at + 1);
        }
        return ranges;
    }

    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000, SEEK_DATA = 3, SEEK_HOLE = 4, ENXIO = 6, AT_EMPTY_PATH = 0x1000;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    /// <summary>One object: its record and which of its pages (by page offset in it) the image stores already.</summary>
    private sealed class SharedMemoryObject(SharedMemoryRecord record)
    {
        private readonly List<(ulong Start, ulong End)> _stored = []; // object pages, [Start, End)

        public SharedMemoryRecord Record { get; } = record;

        /// <summary>The parts of <paramref name="pages"/> (object page ranges) not stored with an earlier mapping; remembers them.</summary>
        public List<(ulong Start, ulong End)> NotYetStored(List<(ulong Start, ulong End)> pages)
        {
            var result = pages.SelectMany(r => Subtract(r.Start, r.End)).ToList();
            _stored.AddRange(result);
            return result;
        }

        // [start, end) minus every stored range.
        private List<(ulong Start, ulong End)> Subtract(ulong start, ulong end)
        {
            var pieces = new List<(ulong Start, ulong End)> { (start, end) };
            foreach (var (storedStart, storedEnd) in _stored)
            {
                var next = new List<(ulong Start, ulong End)>();
                foreach (var (from, to) in pieces)
                {
                    if (storedEnd <= from || storedStart >= to) { next.Add((from, to)); continue; }
                    if (from < storedStart) next.Add((from, storedStart));
                    if (storedEnd < to) next.Add((storedEnd, to));
                }
                pieces = next;
            }
            return pieces;
        }
    }
}
