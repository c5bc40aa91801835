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
/// (stat) and the open file's flags and position; a deleted file is refused. Restore checks the path
/// still names a file (the same one, for a regular file), reopens it by path (O_CREAT/O_TRUNC/O_EXCL
/// dropped, so a restore never creates or truncates) and puts a regular file's position back.
/// </summary>
public sealed class PathFileKind : IDescriptorKind
{
    private const uint O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_CLOEXEC = 0x80000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    private static bool IsPathKind(FileKind kind) => kind is FileKind.Regular or FileKind.Directory or FileKind.CharacterDevice or FileKind.BlockDevice;

    public bool Matches(DescriptorInfo fd) => IsPathKind(fd.StatKind);

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        if (fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal))
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} refers to a deleted file ({fd.Target}): unsupported");
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
        if (file.Record.Kind == FileKind.Regular && (identity.Device != file.Record.Device || identity.Inode != file.Record.Inode))
            throw new RestoreRefusedException($"file {file.Path} of fd {fd} was replaced by another file since the checkpoint");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        uint flags = file.Record.OpenFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC) | O_NOCTTY;
        return syscalls.Call($"openat of {file.Path} for fd {fd}", SYS_openat, AT_FDCWD, scratch.PutString(file.Path), flags, 0);
    }

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        if (file.Record.Kind == FileKind.Regular && file.Record.Position > 0)
            syscalls.Call($"lseek of fd {fd} ({file.Path}) to {file.Record.Position}", SYS_lseek, (ulong)fd, (ulong)file.Record.Position, 0);
    }
}
