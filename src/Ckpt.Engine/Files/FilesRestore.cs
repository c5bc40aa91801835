using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// Closes every descriptor the new task inherited, then reopens the image's files at their
/// descriptor numbers: each file object opened once (RestoreValidation refused O_CREAT, O_TRUNC,
/// O_EXCL and O_TMPFILE; they are masked here too, so a restore never creates or truncates), placed
/// with dup3 (close-on-exec as recorded), and positioned with lseek. Descriptors that shared a file
/// object share it again, offset included.
/// Every open has O_NOFOLLOW (a recorded path is the kernel's resolved name: its last component is
/// never a symbolic link); a regular file is opened with O_NONBLOCK too, and the descriptor is then
/// checked with fstat to be the recorded regular file (device and inode), so a path swapped for a
/// FIFO after validation neither blocks the restore nor is kept; O_NONBLOCK is then cleared unless
/// the image had it.
/// </summary>
public static class FilesRestore
{
    private const ulong F_SETFD = 2, FD_CLOEXEC = 1, F_GETFL = 3, F_SETFL = 4;
    private const uint O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_NONBLOCK = 0x800, O_NOFOLLOW = 0x20000,
        O_CLOEXEC = 0x80000, O_PATH = 0x200000, O_TMPFILE_BIT = 0x400000;
    private const uint S_IFMT = 0xf000, S_IFREG = 0x8000;
    private const int StatSize = 144;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    public static void CloseInherited(SyscallInjector syscalls)
    {
        // Directory descriptors included (GetFiles would skip them: they link to directories).
        foreach (string entry in Directory.GetFileSystemEntries($"/proc/{syscalls.Pid}/fd"))
        {
            int fd = int.Parse(Path.GetFileName(entry));
            syscalls.Call($"close of inherited fd {fd}", SYS_close, (ulong)fd);
        }
    }

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        var placed = new Dictionary<int, int>(); // file objref -> first descriptor restored for it
        foreach (FileDescriptorRecord descriptor in plan.Descriptors.OrderBy(d => d.Fd))
        {
            scratch.Reset();
            FileImage file = plan.Files[descriptor.FileObjRef];
            ulong cloexec = descriptor.CloseOnExec != 0 ? O_CLOEXEC : 0;
            if (placed.TryGetValue(descriptor.FileObjRef, out int sibling))
            {
                syscalls.Call($"dup3 of fd {sibling} to fd {descriptor.Fd} ({file.Path})", SYS_dup3, (ulong)sibling, (ulong)descriptor.Fd, cloexec);
                continue;
            }
            bool regular = file.Record.Kind == FileKind.Regular;
            uint flags = file.Record.OpenFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_TMPFILE_BIT | O_CLOEXEC) | O_NOCTTY | O_NOFOLLOW | (regular ? O_NONBLOCK : 0);
            long opened = syscalls.Call($"openat of {file.Path} for fd {descriptor.Fd}", SYS_openat, AT_FDCWD, scratch.PutString(file.Path), flags, 0);
            if (regular)
            {
                CheckIsRecordedFile(syscalls, scratch, opened, descriptor, file);
                if ((file.Record.OpenFlags & (O_NONBLOCK | O_PATH)) == 0) // O_PATH ignores O_NONBLOCK, and F_SETFL fails on it
                {
                    long status = syscalls.Call($"fcntl(F_GETFL) of {file.Path} for fd {descriptor.Fd}", SYS_fcntl, (ulong)opened, F_GETFL);
                    syscalls.Call($"fcntl(F_SETFL) of {file.Path} for fd {descriptor.Fd}", SYS_fcntl, (ulong)opened, F_SETFL, (ulong)status & ~(ulong)O_NONBLOCK);
                }
            }
            if (opened != descriptor.Fd)
            {
                syscalls.Call($"dup3 to fd {descriptor.Fd} ({file.Path})", SYS_dup3, (ulong)opened, (ulong)descriptor.Fd, cloexec);
                syscalls.Call($"close of temporary fd {opened}", SYS_close, (ulong)opened);
            }
            else if (cloexec != 0)
            {
                syscalls.Call($"fcntl(F_SETFD, FD_CLOEXEC) of fd {descriptor.Fd}", SYS_fcntl, (ulong)opened, F_SETFD, FD_CLOEXEC);
            }
            if (file.Record.Kind == FileKind.Regular && file.Record.Position > 0)
                syscalls.Call($"lseek of fd {descriptor.Fd} ({file.Path}) to {file.Record.Position}", SYS_lseek, (ulong)descriptor.Fd, (ulong)file.Record.Position, 0);
            placed[descriptor.FileObjRef] = descriptor.Fd;
        }
    }

    // The descriptor the task just opened must be the regular file the image recorded (validation
    // checked the path before the process existed; this closes the window since).
    private static unsafe void CheckIsRecordedFile(SyscallInjector syscalls, ScratchArea scratch, long opened, FileDescriptorRecord descriptor, FileImage file)
    {
        ulong buffer = scratch.Reserve(StatSize);
        syscalls.Call($"fstat of {file.Path} for fd {descriptor.Fd}", SYS_fstat, (ulong)opened, buffer);
        byte[] stat = ProcessMemory.ReadExact(syscalls.Pid, buffer, StatSize);
        ulong device = BitConverter.ToUInt64(stat, 0), inode = BitConverter.ToUInt64(stat, 8);
        uint mode = BitConverter.ToUInt32(stat, 24);
        string? problem = (mode & S_IFMT) != S_IFREG ? $"it is {RestoreValidation.KindOfMode(mode)} now, the image recorded a regular file"
            : device != file.Record.Device || inode != file.Record.Inode ? "it was replaced by another file since the checkpoint"
            : null;
        if (problem is null) return;
        syscalls.CallRaw(SYS_close, (ulong)opened);
        throw new RestoreRefusedException($"fd {descriptor.Fd}: {file.Path}: {problem}: refused");
    }
}
