using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// Regular files unlinked while still open ("PATH (deleted)", no link left): contents, size, owner,
/// mode, flags and position (see <see cref="UnlinkedFileKind"/>). Restore: an unlinked file made with
/// O_TMPFILE in the file's original directory (same filesystem, so the same quotas and mount
/// options apply); if that directory is gone the restore is refused naming it.
/// </summary>
public sealed class DeletedFileKind : UnlinkedFileKind
{
    private const string Deleted = " (deleted)";
    private const ulong O_RDWR = 2, O_TMPFILE = 0x410000, O_CLOEXEC = 0x80000, AT_FDCWD = unchecked((ulong)-100);

    protected override FileKind Kind => FileKind.DeletedFile;

    public override bool Matches(DescriptorInfo fd) => IsUnlinked(fd) && !fd.Target.StartsWith("/memfd:", StringComparison.Ordinal);

    private static string DirectoryOf(FileImage file) => Path.GetDirectoryName(file.Path[..^Deleted.Length]) ?? "/";

    protected override void Validate(FileImage file, string user)
    {
        base.Validate(file, user);
        string directory = DirectoryOf(file);
        if (FileIdentity.ModeOfLink(directory) is not { } mode || (mode & RestoreValidation.S_IFMT) != RestoreValidation.S_IFDIR)
            throw new RestoreRefusedException($"{user} is the deleted file {file.Path}, whose directory {directory} no longer exists: refused");
    }

    protected override long Create(SyscallInjector syscalls, ScratchArea scratch, FileImage file, string user)
    {
        string directory = DirectoryOf(file);
        scratch.Reset();
        return syscalls.Call($"openat(O_TMPFILE) in {directory} for the deleted file {file.Path} ({user})", SYS_openat, AT_FDCWD,
            scratch.PutString(directory), O_TMPFILE | O_RDWR | O_CLOEXEC, file.Record.Mode & 0xfff);
    }
}
