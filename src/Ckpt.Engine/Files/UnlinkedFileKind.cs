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
/// O_RDWR. A mapping of such a file is still refused (MemoryCheckpoint), so a file shared by a
/// descriptor and a mapping is not restored yet.
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
    protected virtual FileSeals SealsOf(int engineFd, DescriptorInfo fd) => FileSeals.None;

    /// <summary>Checkpoint refusals of the kind (e.g. a hugetlbfs memfd).</summary>
    protected virtual void Refuse(DescriptorInfo fd) { }

    // ---- checkpoint ----

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        Refuse(fd);
        int engineFd = open($"/proc/{fd.Pid}/fd/{fd.Fd}", O_RDONLY | O_CLOEXEC);
        if (engineFd < 0) throw new SyscallException("open", Native.LastErrno, fd.Pid, $"/proc/{fd.Pid}/fd/{fd.Fd} ({fd.Target})");
        var handle = new SafeFileHandle(engineFd, ownsHandle: true);
        try
        {
            var unlinked = new UnlinkedFileRecord { ObjRef = objRef, Seals = SealsOf(engineFd, fd), Uid = fd.Stat.Uid, Gid = fd.Stat.Gid, FileSize = fd.Stat.Size };
            if (unlinked.FileSize > UnlinkedFileRecord.MaxSize)
                throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} ({fd.Target}) holds {unlinked.FileSize} bytes, more than the {UnlinkedFileRecord.MaxSize} an image takes for one file");
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

    private sealed record Inspected(FileRecord File, string Path, UnlinkedFileRecord Unlinked, SafeFileHandle Contents, List<ulong> Pages) : IInspectedFile
    {
        public void Write(ImageWriter writer)
        {
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

    public virtual void Validate(FileImage file, int fd)
    {
        // The image model checked the record; it is only missing from a model made by hand.
        if (file.Unlinked is null)
            throw new RestoreRefusedException($"fd {fd} ({file.Path}) has no UNLINKED_FILE record");
    }

    /// <summary>Before any process exists: the owner must be one the image's credentials could have made the file with.</summary>
    public void Validate(FileImage file, int fd, RestorePlan plan)
    {
        Validate(file, fd);
        CredentialsRecord credentials = plan.Credentials;
        UnlinkedFileRecord unlinked = file.Unlinked!.Record;
        bool uidOk = unlinked.Uid is var u && (u == credentials.Uid || u == credentials.Euid || u == credentials.Suid || u == credentials.Fsuid);
        bool gidOk = unlinked.Gid is var g && (g == credentials.Gid || g == credentials.Egid || g == credentials.Sgid || g == credentials.Fsgid || plan.Groups.Contains(g));
        if (!uidOk || !gidOk)
            throw new RestoreRefusedException($"fd {fd} ({file.Path}) is owned by uid {unlinked.Uid} gid {unlinked.Gid}, which are not the image's credentials: refused");
    }

    /// <summary>The kind's empty unlinked file, opened O_RDWR in the task.</summary>
    protected abstract long Create(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd);

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("an unlinked file is opened with its restore plan (its contents are in the image)");

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        RestorePlan plan = creation.Plan;
        UnlinkedFileImage unlinked = file.Unlinked!;
        long created = Create(syscalls, scratch, file, fd);
        ulong target = (ulong)created;
        syscalls.Call($"fchown of {file.Path} for fd {fd}", SYS_fchown, target, unlinked.Record.Uid, unlinked.Record.Gid);
        syscalls.Call($"fchmod of {file.Path} for fd {fd}", SYS_fchmod, target, file.Record.Mode & 0xfff);
        syscalls.Call($"ftruncate of {file.Path} for fd {fd} to {unlinked.Record.FileSize}", SYS_ftruncate, target, (ulong)unlinked.Record.FileSize);
        WriteContents(syscalls, scratch, plan, unlinked, target, file.Path, fd);
        if (unlinked.Record.Seals != 0)
            syscalls.Call($"fcntl(F_ADD_SEALS, 0x{(uint)unlinked.Record.Seals:x}) of {file.Path} for fd {fd}", SYS_fcntl, target, F_ADD_SEALS, (ulong)unlinked.Record.Seals);
        uint flags = file.Record.OpenFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_TMPFILE_BIT | O_CLOEXEC_FLAG | O_LARGEFILE);
        if (flags == O_RDWR) return created;
        // Another access mode or status flags (O_APPEND, O_NONBLOCK ...): a new open file of the same file.
        scratch.Reset();
        long reopened = syscalls.Call($"openat of /proc/self/fd/{created} ({file.Path}) for fd {fd}", SYS_openat, AT_FDCWD,
            scratch.PutString($"/proc/self/fd/{created}"), flags | O_NOCTTY, 0);
        syscalls.Call($"close of the first descriptor of {file.Path}", SYS_close, target);
        return reopened;
    }

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        if (file.Record.Position > 0)
            syscalls.Call($"lseek of fd {fd} ({file.Path}) to {file.Record.Position}", SYS_lseek, (ulong)fd, (ulong)file.Record.Position, 0);
    }

    private static void WriteContents(SyscallInjector syscalls, ScratchArea scratch, RestorePlan plan, UnlinkedFileImage unlinked, ulong target, string path, int fd)
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
                long written = syscalls.Call($"pwrite64 of {path} at {offset} for fd {fd}", SYS_pwrite64, target, scratch.Put(page.AsSpan(0, length)), (ulong)length, offset);
                if (written != length) throw new IOException($"{path} (fd {fd}): pwrite64 at {offset} wrote {written} of {length} bytes");
            }
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl(int fd, int command);

    protected static FileSeals ReadSeals(int engineFd, DescriptorInfo fd)
    {
        int seals = fcntl(engineFd, (int)F_GET_SEALS);
        if (seals < 0) throw new SyscallException("fcntl(F_GET_SEALS)", Native.LastErrno, fd.Pid, $"fd {fd.Fd} ({fd.Target})");
        return (FileSeals)seals;
    }
}
