using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// A named pipe whose last name was unlinked while the tree held it open (st_nlink 0, "PATH (deleted)"):
/// a FIFO with no name, reachable only through its open ends. Checkpoint as a named FIFO
/// (<see cref="FifoKind"/>: each end a file object with its flags, the FIFO's buffer one object with its
/// size and bytes, copied without being consumed; refused: O_ASYNC, an end held outside the tree), FILE
/// kind DeletedFifo, its path as /proc shows it. Refused too: a FIFO not owned by the holding process's
/// filesystem uid and gid (the restore makes it with those and can give it no other owner).
/// Restore: the first end placed in the tree makes the FIFO at a temporary name (mknodat, injected with
/// the process's credentials): its original path if free (the same "PATH (deleted)" in /proc as before),
/// else a hidden name next to it (the same filesystem as before either way), or, when that directory is
/// gone or not writable for the process, in a private directory (mode 0700) under /tmp; opens it as a named FIFO is opened (a read-write helper so that no open waits or gets ENXIO, the
/// size, the saved bytes), gives it the recorded owner and mode, and unlinks the name (and the private
/// directory) before anything else runs: again a FIFO with no name. Every later end, in any process, is
/// opened through /proc/PID/fd of the placed one (FilesRestore keeps where it is), with a read-write
/// helper likewise.
/// </summary>
public sealed partial class DeletedFifoKind : IDescriptorKind
{
    private const string Deleted = " (deleted)";
    private const uint O_ACCMODE = 3, O_RDWR = 2, O_NONBLOCK = 0x800, O_DIRECT = 0x4000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;
    private const uint S_IFIFO = 0x1000;
    private const int F_SETFL = 4, ENOENT = 2, EACCES = 13, EPERM = 1, EROFS = 30, ENOTDIR = 20, EEXIST = 17;
    private const ulong AT_FDCWD = unchecked((ulong)-100), AT_REMOVEDIR = 0x200;
    private const long SYS_mknodat = 259, SYS_mkdirat = 258, SYS_unlinkat = 263, SYS_fchown = 93;

    public bool Matches(DescriptorInfo fd) =>
        fd.StatKind == FileKind.Pipe && !fd.Target.StartsWith("pipe:[", StringComparison.Ordinal) && fd.Stat.LinkCount == 0;

    // ---- checkpoint ----

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        string what = $"fd {fd.Fd} of process {fd.Pid} (the deleted FIFO {fd.Target})";
        ProcStatus status = ProcStatus.Read(fd.Pid);
        uint[] uids = status.Numbers("Uid"), gids = status.Numbers("Gid");
        if (fd.Stat.Uid != uids[3] || fd.Stat.Gid != gids[3])
            throw new CheckpointRefusedException($"{what} is owned by uid {fd.Stat.Uid} gid {fd.Stat.Gid}, not by the process's filesystem uid {uids[3]} and gid {gids[3]}: the restore makes the FIFO again with the process's and could give it no other owner");
        return FifoKind.InspectEnd(fd, objRef, FileKind.DeletedFifo, what);
    }

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.DeletedFifo;

    public void Validate(FileImage file, int fd)
    {
        if (file.Fifo is null)
            throw new RestoreRefusedException($"fd {fd} is an end of a deleted FIFO without its buffer (PIPE_BUF record)");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("a deleted FIFO is opened with its restore plan (FileCreation)");

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        if (creation.Elsewhere.TryGetValue(file.Fifo!.Record.PipeObjRef, out var placed))
            return FifoKind.OpenWithHelper(syscalls, scratch, file, fd, $"/proc/{placed.Pid}/fd/{placed.Fd}");
        var (path, privateDirectory) = MakeFifo(syscalls, scratch, file, fd);
        long opened = -1;
        try
        {
            opened = FifoKind.OpenWithHelper(syscalls, scratch, file, fd, path);
            CredentialsRecord credentials = creation.Plan.Credentials;
            syscalls.Call($"fchown({credentials.Fsuid}, {credentials.Fsgid}) of the new FIFO for fd {fd}", SYS_fchown, (ulong)opened, credentials.Fsuid, credentials.Fsgid);
            syscalls.Call($"fchmod(0{Convert.ToString(file.Record.Mode & 0xfff, 8)}) of the new FIFO for fd {fd}", SYS_fchmod, (ulong)opened, file.Record.Mode & 0xfff);
            return opened;
        }
        finally
        {
            scratch.Reset();
            if (opened < 0 || StillNames(path, syscalls.Pid, opened))
                syscalls.Call($"unlinkat of {path}, the temporary name of the deleted FIFO {file.Path}", SYS_unlinkat, AT_FDCWD, scratch.PutString(path), 0);
            if (privateDirectory is not null)
                syscalls.Call($"rmdir of {privateDirectory}", SYS_unlinkat, AT_FDCWD, scratch.PutString(privateDirectory), AT_REMOVEDIR);
        }
    }

    /// <summary>
    /// A new FIFO at a temporary name: the original path when it is free (then /proc/PID/fd shows the same
    /// "PATH (deleted)" as before), else a hidden name next to it, else, when that directory is gone or not
    /// the process's to write, a private directory under /tmp.
    /// </summary>
    private static (string Path, string? PrivateDirectory) MakeFifo(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        string original = file.Path.EndsWith(Deleted, StringComparison.Ordinal) ? file.Path[..^Deleted.Length] : file.Path;
        string name = $".ckpt-fifo-{Guid.NewGuid():N}";
        long made = MakeNode(syscalls, scratch, original);
        if (made == 0) return (original, null);
        string besides = Path.Combine(Path.GetDirectoryName(original) ?? "/", name);
        if (made == -EEXIST && (made = MakeNode(syscalls, scratch, besides)) == 0) return (besides, null);
        if (made is not (-ENOENT or -EACCES or -EPERM or -EROFS or -ENOTDIR))
            throw new SyscallException($"mknodat of {besides} (the deleted FIFO {file.Path}, fd {fd})", (int)-made, syscalls.Pid);
        string directory = $"/tmp/{name}";
        scratch.Reset();
        syscalls.Call($"mkdirat of {directory} (for the deleted FIFO {file.Path}, fd {fd})", SYS_mkdirat, AT_FDCWD, scratch.PutString(directory), 0x1c0);
        string inside = $"{directory}/fifo";
        if ((made = MakeNode(syscalls, scratch, inside)) == 0) return (inside, directory);
        scratch.Reset();
        syscalls.CallRaw(SYS_unlinkat, AT_FDCWD, scratch.PutString(directory), AT_REMOVEDIR);
        throw new SyscallException($"mknodat of {inside} (the deleted FIFO {file.Path}, fd {fd})", (int)-made, syscalls.Pid);
    }

    private static long MakeNode(SyscallInjector syscalls, ScratchArea scratch, string path)
    {
        scratch.Reset();
        return syscalls.CallRaw(SYS_mknodat, AT_FDCWD, scratch.PutString(path), S_IFIFO | 0x180, 0);
    }

    // The name is unlinked only while it is still the new FIFO's (nobody renamed another file onto it meanwhile).
    private static bool StillNames(string path, int pid, long opened) =>
        Native.stat($"/proc/{pid}/fd/{opened}", out Native.Stat made) == 0 && lstat(path, out Native.Stat named) == 0
        && made.Device == named.Device && made.Inode == named.Inode;

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        ulong flags = file.Record.OpenFlags & (O_NONBLOCK | O_DIRECT);
        syscalls.Call($"fcntl(F_SETFL, 0x{flags:x}) of deleted FIFO fd {fd}", SYS_fcntl, (ulong)fd, F_SETFL, flags);
    }

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int lstat(string path, out Native.Stat result);
}
