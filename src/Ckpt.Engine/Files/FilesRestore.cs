using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// Closes every descriptor the new task inherited, then reopens the image's files at their
/// descriptor numbers: each file object opened once (O_CREAT/O_TRUNC/O_EXCL dropped, so a
/// restore never creates or truncates), placed with dup3 (close-on-exec as recorded), and
/// positioned with lseek. Descriptors that shared a file object share it again, offset included.
/// </summary>
public static class FilesRestore
{
    private const ulong F_SETFD = 2, FD_CLOEXEC = 1;
    private const uint O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_CLOEXEC = 0x80000;
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
            uint flags = file.Record.OpenFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC) | O_NOCTTY;
            long opened = syscalls.Call($"openat of {file.Path} for fd {descriptor.Fd}", SYS_openat, AT_FDCWD, scratch.PutString(file.Path), flags, 0);
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
}
