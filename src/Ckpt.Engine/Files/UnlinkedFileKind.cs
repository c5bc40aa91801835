using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// What memfds (<see cref="MemfdKind"/>) and deleted files (<see cref="DeletedFileKind"/>) share: a file
/// with no name to reopen, so its contents travel in the image. Checkpoint: the engine opens
/// /proc/PID/fd/N read-only (the same file; nothing of the target changes), finds the data ranges with
/// SEEK_DATA/SEEK_HOLE and writes FILE, UNLINKED_FILE {size, seals, owner} and the data pages as
/// PAGE_ARRAY chunks of file offsets (all-zero pages left out, as holes). Restore: the kind creates an
/// empty unlinked file in the task; then its owner (one of the image's credentials' ids, checked by
/// validation), mode, size, contents (pwrite64 of each saved page, read from the image) and seals are
/// set, and the file is reopened through /proc/self/fd/N with the recorded flags when they are not
/// O_RDWR. A file that is also mapped, or only mapped, is the same object for its descriptor and
/// every mapping of it (<see cref="Memory.UnlinkedFileMappings"/>): its contents are written once,
/// with the first use, and the restore's memory stage creates it and hands it to the descriptor.
/// </summary>
public abstract partial class UnlinkedFileKind : IDescriptorKind
{
    private const string Deleted = " (deleted)";
    private const int SEEK_DATA = 3, SEEK_HOLE = 4, O_RDONLY = 0, O_CLOEXEC = 0x80000, ENXIO = 6;
    private const ulong F_ADD_SEALS = 1033, F_GET_SEALS = 1034;
    private const uint O_ACCMODE = 3, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_CLOEXEC_FLAG = 0x80000, O_TMPFILE_BIT = 0x400000,
        O_LARGEFILE = 0x8000, O_DIRECTORY = 0x10000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    /// <summary>A regular file whose last link is gone (its descriptor link ends in " (deleted)").</summary>
    public static bool IsUnlinked(DescriptorInfo fd) =>
        fd.StatKind == FileKind.Regular && fd.Stat.LinkCount == 0 && fd.Target.EndsWith(Deleted, StringComparison.Ordinal);

    protected abstract FileKind Kind { get; }

    public abstract bool Matches(DescriptorInfo fd);

    /// <summary>The seals of the file (a memfd's), read with fcntl on the engine's own descriptor of it.</summary>
    protected virtual FileSeals SealsOf(int engineFd, DescriptorInfo fd, string who) => FileSeals.None;

    /// <summary>Checkpoint refusals of the kind (e.g. a hugetlbfs memfd); <paramref name="who"/> names the descriptor or mapping.</summary>
    protected virtual void Refuse(DescriptorInfo fd, string who) { }

    // ---- checkpoint ----

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef) =>
        Inspect(fd, objRef, $"/proc/{fd.Pid}/fd/{fd.Fd}", $"fd {fd.Fd} of process {fd.Pid}");

    /// <summary>
    /// The file object of an unlinked file that only a mapping holds (no descriptor): its contents are
    /// read through /proc/PID/map_files, and it is restored as opened O_RDWR (how a mapping needs it).
    /// </summary>
    public static IInspectedFile InspectMapped(int pid, MapsEntry map, in Native.Stat stat, int objRef)
    {
        string mapFile = $"/proc/{pid}/map_files/{map.Start:x}-{map.End:x}";
        var info = new DescriptorInfo(pid, -1, map.Name, stat, new ProcFdInfo(0, O_RDWR | O_LARGEFILE, new Dictionary<string, string>()));
        UnlinkedFileKind kind = map.Name.StartsWith("/memfd:", StringComparison.Ordinal) ? new MemfdKind() : new DeletedFileKind();
        return kind.Inspect(info, objRef, mapFile, $"the mapping 0x{map.Start:x}-0x{map.End:x} of process {pid}");
    }

    private IInspectedFile Inspect(DescriptorInfo fd, int objRef, string contentsPath, string who)
    {
        Refuse(fd, who);
        int engineFd = open(contentsPath, O_RDONLY | O_CLOEXEC);
        if (engineFd < 0) throw new SyscallException("open", Native.LastErrno, fd.Pid, $"{contentsPath} ({fd.Target})");
        var handle = new SafeFileHandle(engineFd, ownsHandle: true);
        try
        {
            var unlinked = new UnlinkedFileRecord { ObjRef = objRef, Seals = SealsOf(engineFd, fd, who), Uid = fd.Stat.Uid, Gid = fd.Stat.Gid, FileSize = fd.Stat.Size };
            if (unlinked.FileSize > UnlinkedFileRecord.MaxSize)
                throw new CheckpointRefusedException($"{who} ({fd.Target}) holds {unlinked.FileSize} bytes, more than the {UnlinkedFileRecord.MaxSize} an image takes for one file");
            // A file made with O_TMPFILE keeps __O_TMPFILE | O_DIRECTORY in its flags: how it was made, not how it is open.
            uint flags = fd.FdInfo.Flags & ~(O_TMPFILE_BIT | O_DIRECTORY);
            FileRecord file = OpenFileRecords.Record(objRef, Kind, fd.Stat, fd.Target, flags, fd.FdInfo.Position);
            return new Inspected(file, fd.Target, unlinked, handle, DataPages(engineFd, fd));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The page offsets inside data ranges (SEEK_DATA/SEEK_HOLE), in order.</summary>
    private static List<ulong> DataPages(int engineFd, DescriptorInfo fd)
    {
        long pageSize = Environment.SystemPageSize, size = fd.Stat.Size;
        var pages = new List<ulong>();
        for (long at = 0; at < size;)
        {
            long data = lseek(engineFd, at, SEEK_DATA);
            if (data < 0 && Native.LastErrno == ENXIO) break; // only a hole is left
            if (data < 0) throw new SyscallException("lseek(SEEK_DATA)", Native.LastErrno, fd.Pid, fd.Target);
            long hole = lseek(engineFd, data, SEEK_HOLE);
            if (hole < 0) throw new SyscallException("lseek(SEEK_HOLE)", Native.LastErrno, fd.Pid, fd.Target);
            for (long page = data / pageSize * pageSize; page < Math.Min(hole, size); page += pageSize)
                if (pages.Count == 0 || pages[^1] < (ulong)page) pages.Add((ulong)page);
            at = Math.Max(hole, at + 1);
        }
        return pages;
    }

    // Written once, by its first use: a mapping (the memory section comes first) or its descriptor.
    private sealed record Inspected(FileRecord File, string Path, UnlinkedFileRecord Unlinked, SafeFileHandle Contents, List<ulong> Pages) : IInspectedFile
    {
        private bool _written;

        public void Write(ImageWriter writer)
        {
            if (_written) return;
            _written = true;
            using SafeFileHandle contents = Contents;
            writer.Write(File, Encoding.UTF8.GetBytes(Path));
            writer.Write(Unlinked);
            int pageSize = Environment.SystemPageSize;
            for (int first = 0; first < Pages.Count; first += PageArrayRecord.MaxPagesPerChunk)
            {
                ulong[] offsets = Pages.Skip(first).Take(PageArrayRecord.MaxPagesPerChunk).ToArray();
                Span<byte> chunk = writer.BeginPageArray(offsets, pageSize);
                for (int i = 0; i < offsets.Length; i++)
                {
                    Span<byte> page = chunk.Slice(i * pageSize, pageSize);
                    page.Clear();
                    RandomAccess.Read(contents, page, (long)offsets[i]); // the last page may be short: zeros after the end
                }
                writer.EndPageArray(dropZeroPages: true);
            }
            writer.WritePageArrayEnd();
        }
    }

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == Kind;

    public void Validate(FileImage file, int fd) => Validate(file, $"fd {fd}");

    /// <param name="user">the descriptor or mapping that holds the file, for messages</param>
    protected virtual void Validate(FileImage file, string user)
    {
        // The image model checked the record; it is only missing from a model made by hand.
        if (file.Unlinked is null)
            throw new RestoreRefusedException($"{user} ({file.Path}) has no UNLINKED_FILE record");
    }

    public void Validate(FileImage file, int fd, RestorePlan plan) => Validate(file, $"fd {fd}", plan);

    /// <summary>Before any process exists: the owner must be one the image's credentials could have made the file with.</summary>
    public void Validate(FileImage file, string user, RestorePlan plan)
    {
        Validate(file, user);
        CredentialsRecord credentials = plan.Credentials;
        UnlinkedFileRecord unlinked = file.Unlinked!.Record;
        bool uidOk = unlinked.Uid is var u && (u == credentials.Uid || u == credentials.Euid || u == credentials.Suid || u == credentials.Fsuid);
        bool gidOk = unlinked.Gid is var g && (g == credentials.Gid || g == credentials.Egid || g == credentials.Sgid || g == credentials.Fsgid || plan.Groups.Contains(g));
        if (!uidOk || !gidOk)
            throw new RestoreRefusedException($"{user} ({file.Path}) is owned by uid {unlinked.Uid} gid {unlinked.Gid}, which are not the image's credentials: refused");
    }

    /// <summary>The kind's empty unlinked file, opened O_RDWR in the task.</summary>
    protected abstract long Create(SyscallInjector syscalls, ScratchArea scratch, FileImage file, string user);

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("an unlinked file is opened with its restore plan (its contents are in the image)");

    /// <summary>
    /// The descriptor's open file: of the file the memory stage made for its mappings if there is
    /// one (sealed already), else of a new file with the contents and seals.
    /// </summary>
    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        if (!creation.TryTakeMapped(file.Record.ObjRef, out long created))
        {
            created = CreateWithContents(syscalls, scratch, creation.Plan, file, $"fd {fd}");
            AddSeals(syscalls, file, created, $"fd {fd}");
        }
        uint flags = file.Record.OpenFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_TMPFILE_BIT | O_CLOEXEC_FLAG | O_LARGEFILE);
        if (flags == O_RDWR) return created;
        // Another access mode or status flags (O_APPEND, O_NONBLOCK ...): a new open file of the same file.
        long reopened = Reopen(syscalls, scratch, file, created, flags, $"fd {fd}");
        syscalls.Call($"close of the first descriptor of {file.Path}", SYS_close, (ulong)created);
        return reopened;
    }

    /// <summary>A new open file of the file open as <paramref name="created"/> in the task, with <paramref name="flags"/>.</summary>
    public static long Reopen(SyscallInjector syscalls, ScratchArea scratch, FileImage file, long created, uint flags, string user)
    {
        scratch.Reset();
        return syscalls.Call($"openat of /proc/self/fd/{created} ({file.Path}) for {user}", SYS_openat, AT_FDCWD,
            scratch.PutString($"/proc/self/fd/{created}"), flags | O_NOCTTY, 0);
    }

    /// <summary>The file, made by the kind, with its owner, mode, size and contents, but no seals yet (open O_RDWR in the task).</summary>
    public long CreateWithContents(SyscallInjector syscalls, ScratchArea scratch, RestorePlan plan, FileImage file, string user)
    {
        UnlinkedFileImage unlinked = file.Unlinked!;
        long created = Create(syscalls, scratch, file, user);
        ulong target = (ulong)created;
        syscalls.Call($"fchown of {file.Path} for {user}", SYS_fchown, target, unlinked.Record.Uid, unlinked.Record.Gid);
        syscalls.Call($"fchmod of {file.Path} for {user}", SYS_fchmod, target, file.Record.Mode & 0xfff);
        syscalls.Call($"ftruncate of {file.Path} for {user} to {unlinked.Record.FileSize}", SYS_ftruncate, target, (ulong)unlinked.Record.FileSize);
        WriteContents(syscalls, scratch, plan, unlinked, target, file.Path, user);
        return created;
    }

    /// <summary>The recorded seals, last: after the contents, and after the writable shared mappings (F_SEAL_FUTURE_WRITE allows those made before it).</summary>
    public static void AddSeals(SyscallInjector syscalls, FileImage file, long created, string user)
    {
        FileSeals seals = file.Unlinked!.Record.Seals;
        if (seals != 0)
            syscalls.Call($"fcntl(F_ADD_SEALS, 0x{(uint)seals:x}) of {file.Path} for {user}", SYS_fcntl, (ulong)created, F_ADD_SEALS, (ulong)seals);
    }

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        if (file.Record.Position > 0)
            syscalls.Call($"lseek of fd {fd} ({file.Path}) to {file.Record.Position}", SYS_lseek, (ulong)fd, (ulong)file.Record.Position, 0);
    }

    private static void WriteContents(SyscallInjector syscalls, ScratchArea scratch, RestorePlan plan, UnlinkedFileImage unlinked, ulong target, string path, string user)
    {
        int pageSize = (int)plan.Header.PageSize;
        var page = new byte[pageSize];
        foreach (PageChunk chunk in unlinked.Chunks)
        {
            for (int i = 0; i < chunk.Addresses.Length; i++)
            {
                RandomAccess.Read(plan.ImageFile, page, chunk.ContentsOffset + (long)i * pageSize);
                ulong offset = chunk.Addresses[i];
                int length = (int)Math.Min(pageSize, unlinked.Record.FileSize - (long)offset);
                scratch.Reset();
                long written = syscalls.Call($"pwrite64 of {path} at {offset} for {user}", SYS_pwrite64, target, scratch.Put(page.AsSpan(0, length)), (ulong)length, offset);
                if (written != length) throw new IOException($"{path} ({user}): pwrite64 at {offset} wrote {written} of {length} bytes");
            }
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl(int fd, int command);

    protected static FileSeals ReadSeals(int engineFd, DescriptorInfo fd, string who)
    {
        int seals = fcntl(engineFd, (int)F_GET_SEALS);
        if (seals < 0) throw new SyscallException("fcntl(F_GET_SEALS)", Native.LastErrno, fd.Pid, $"{who} ({fd.Target})");
        return (FileSeals)seals;
    }
}
