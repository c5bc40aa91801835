using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// Files reached by a path: regular files, directories and devices. Checkpoint records the identity
/// (stat) and the open file's flags and position (a deleted file is <see cref="DeletedFileKind"/>'s). Restore checks the path
/// is still what the image recorded (lstat: a FIFO, socket, device or symbolic link in place of a
/// regular file is refused instead of blocking or talking to someone else; the same file, for a
/// regular file), reopens it by path (O_CREAT/O_TRUNC/O_EXCL/O_TMPFILE never passed, so a restore
/// never creates or truncates; O_NOFOLLOW always, since the recorded path is the kernel's resolved
/// name; a regular file with O_NONBLOCK and checked by fstat to be the recorded file, so a path
/// swapped after validation neither blocks the restore nor is kept; O_NONBLOCK then cleared unless
/// recorded) and puts a regular file's position back.
/// </summary>
public sealed class PathFileKind : IDescriptorKind
{
    private const uint O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_NONBLOCK = 0x800, O_NOFOLLOW = 0x20000,
        O_CLOEXEC = 0x80000, O_PATH = 0x200000, O_TMPFILE_BIT = 0x400000;
    private const uint S_IFMT = 0xf000, S_IFREG = 0x8000;
    private const ulong F_GETFL = 3, F_SETFL = 4;
    private const int StatSize = 144;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    private static bool IsPathKind(FileKind kind) => kind is FileKind.Regular or FileKind.Directory or FileKind.CharacterDevice or FileKind.BlockDevice;

    // A deleted file (no link left) is UnlinkedFileKind's: its contents travel in the image.
    public bool Matches(DescriptorInfo fd) => IsPathKind(fd.StatKind) && !UnlinkedFileKind.IsUnlinked(fd);

    public bool SavedInFlight => true;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        if (fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal) && fd.Stat.LinkCount == 0)
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} refers to a deleted {fd.StatKind.ToString().ToLowerInvariant()} ({fd.Target}): unsupported");
        return new Inspected(OpenFileRecords.Record(objRef, fd.StatKind, fd.Stat, fd.Target, fd.FdInfo.Flags, fd.FdInfo.Position), fd.Target);
    }

    private sealed record Inspected(FileRecord File, string Path) : IInspectedFile
    {
        public void Write(ImageWriter writer) => writer.Write(File, Encoding.UTF8.GetBytes(Path));
    }

    public bool Restores(FileImage file) => IsPathKind(file.Record.Kind);

    public void Validate(FileImage file, int fd)
    {
        FileIdentity identity = FileIdentity.Of(file.Path)
            ?? throw new RestoreRefusedException($"file {file.Path} of fd {fd} is missing");
        // What the path is now, not what it leads to.
        uint now = FileIdentity.ModeOfLink(file.Path) ?? identity.Mode;
        uint recorded = RestoreValidation.ModeFor(file.Record.Kind);
        if ((now & S_IFMT) != recorded)
            throw new RestoreRefusedException($"fd {fd}: {file.Path} is {RestoreValidation.KindOfMode(now)} now, the image recorded {RestoreValidation.KindOfMode(recorded)}: refused");
        if (file.Record.Kind == FileKind.Regular && (identity.Device != file.Record.Device || identity.Inode != file.Record.Inode))
            throw new RestoreRefusedException($"file {file.Path} of fd {fd} was replaced by another file since the checkpoint");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        bool regular = file.Record.Kind == FileKind.Regular;
        uint flags = file.Record.OpenFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_TMPFILE_BIT | O_CLOEXEC) | O_NOCTTY | O_NOFOLLOW | (regular ? O_NONBLOCK : 0);
        long opened = syscalls.Call($"openat of {file.Path} for fd {fd}", SYS_openat, AT_FDCWD, scratch.PutString(file.Path), flags, 0);
        if (!regular) return opened;
        CheckIsRecordedFile(syscalls, scratch, opened, fd, file);
        if ((file.Record.OpenFlags & (O_NONBLOCK | O_PATH)) == 0) // O_PATH ignores O_NONBLOCK, and F_SETFL fails on it
        {
            long status = syscalls.Call($"fcntl(F_GETFL) of {file.Path} for fd {fd}", SYS_fcntl, (ulong)opened, F_GETFL);
            syscalls.Call($"fcntl(F_SETFL) of {file.Path} for fd {fd}", SYS_fcntl, (ulong)opened, F_SETFL, (ulong)status & ~(ulong)O_NONBLOCK);
        }
        return opened;
    }

    private static void CheckIsRecordedFile(SyscallInjector syscalls, ScratchArea scratch, long opened, int fd, FileImage file)
    {
        ulong buffer = scratch.Reserve(StatSize);
        syscalls.Call($"fstat of {file.Path} for fd {fd}", SYS_fstat, (ulong)opened, buffer);
        byte[] stat = ProcessMemory.ReadExact(syscalls.Pid, buffer, StatSize);
        ulong device = BitConverter.ToUInt64(stat, 0), inode = BitConverter.ToUInt64(stat, 8);
        uint mode = BitConverter.ToUInt32(stat, 24);
        string? problem = (mode & S_IFMT) != S_IFREG ? $"it is {RestoreValidation.KindOfMode(mode)} now, the image recorded a regular file"
            : device != file.Record.Device || inode != file.Record.Inode ? "it was replaced by another file since the checkpoint"
            : null;
        if (problem is null) return;
        syscalls.CallRaw(SYS_close, (ulong)opened);
        throw new RestoreRefusedException($"fd {fd}: {file.Path}: {problem}: refused");
    }

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        if (file.Record.Kind == FileKind.Regular && file.Record.Position > 0)
            syscalls.Call($"lseek of fd {fd} ({file.Path}) to {file.Record.Position}", SYS_lseek, (ulong)fd, (ulong)file.Record.Position, 0);
    }
}
