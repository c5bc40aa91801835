using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// Closes every descriptor the new task inherited, then recreates the image's descriptors at their
/// numbers: each file object created once by its kind (<see cref="DescriptorKinds"/>), placed with
/// dup3 (close-on-exec as recorded), then given its kind's post-placement state (a position).
/// Descriptors that shared a file object share it again, offset and counters included.
/// </summary>
public static class FilesRestore
{
    private const ulong F_SETFD = 2, FD_CLOEXEC = 1, O_CLOEXEC = 0x80000;

    /// <summary>Before any process exists: every descriptor's file object has a kind that accepts it here.</summary>
    public static void Validate(RestorePlan plan)
    {
        foreach (FileDescriptorRecord descriptor in plan.Descriptors)
        {
            FileImage file = plan.Files[descriptor.FileObjRef];
            // Flags the kernel never leaves in f_flags: only an edited image has them, and a restore
            // must never create or truncate anything.
            uint forbidden = file.Record.OpenFlags & (RestoreValidation.O_CREAT | RestoreValidation.O_EXCL | RestoreValidation.O_TRUNC | RestoreValidation.O_TMPFILE_BIT);
            if (forbidden != 0)
                throw new RestoreRefusedException($"fd {descriptor.Fd} ({file.Path}) has open flags {RestoreValidation.FlagNames(forbidden)}, which a checkpoint never records: refused");
            DescriptorKinds.ForRestore(file, descriptor.Fd).Validate(file, descriptor.Fd);
        }
    }

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
        var creation = new FileCreation(syscalls, plan.Files, plan.Descriptors.Count == 0 ? 0 : plan.Descriptors.Max(d => d.Fd) + 1);
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
            IDescriptorKind kind = DescriptorKinds.ForRestore(file, descriptor.Fd);
            long opened = creation.TryTake(descriptor.FileObjRef, out long made) ? made : kind.Open(syscalls, scratch, file, descriptor.Fd, creation);
            if (opened != descriptor.Fd)
            {
                syscalls.Call($"dup3 to fd {descriptor.Fd} ({file.Path})", SYS_dup3, (ulong)opened, (ulong)descriptor.Fd, cloexec);
                syscalls.Call($"close of temporary fd {opened}", SYS_close, (ulong)opened);
            }
            else if (cloexec != 0)
            {
                syscalls.Call($"fcntl(F_SETFD, FD_CLOEXEC) of fd {descriptor.Fd}", SYS_fcntl, (ulong)opened, F_SETFD, FD_CLOEXEC);
            }
            kind.Placed(syscalls, file, descriptor.Fd);
            placed[descriptor.FileObjRef] = descriptor.Fd;
        }
        creation.RequireNothingParked();
    }
}
