using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// memfds ("/memfd:NAME (deleted)"): contents, size, seals, owner, mode, flags and position (see
/// <see cref="UnlinkedFileKind"/>). Restore: memfd_create(NAME, MFD_ALLOW_SEALING plus MFD_NOEXEC_SEAL when
/// the file had F_SEAL_EXEC and no execute bit, else MFD_EXEC), so the recorded seals can be added after
/// the contents (a memfd made without MFD_ALLOW_SEALING has F_SEAL_SEAL, which is added back);
/// MFD_CLOEXEC is the descriptor's. A hugetlbfs memfd (MFD_HUGETLB) is refused at checkpoint.
/// </summary>
public sealed class MemfdKind : UnlinkedFileKind
{
    private const string Prefix = "/memfd:", Deleted = " (deleted)";
    private const ulong MFD_ALLOW_SEALING = 2, MFD_NOEXEC_SEAL = 8, MFD_EXEC = 0x10;

    protected override FileKind Kind => FileKind.Memfd;

    public override bool Matches(DescriptorInfo fd) => IsUnlinked(fd) && fd.Target.StartsWith(Prefix, StringComparison.Ordinal);

    protected override void Refuse(DescriptorInfo fd, string who)
    {
        // hugetlbfs reports its huge page size as the block size.
        if (fd.Stat.BlockSize > Environment.SystemPageSize)
            throw new CheckpointRefusedException($"{who} is a hugetlbfs memfd ({fd.Target}, MFD_HUGETLB): unsupported");
    }

    protected override FileSeals SealsOf(int engineFd, DescriptorInfo fd, string who) => ReadSeals(engineFd, fd, who);

    protected override long Create(SyscallInjector syscalls, ScratchArea scratch, FileImage file, string user)
    {
        string name = file.Path[Prefix.Length..^Deleted.Length];
        bool noExec = file.Unlinked!.Record.Seals.HasFlag(FileSeals.Exec) && (file.Record.Mode & 0x49) == 0;
        ulong flags = MFD_ALLOW_SEALING | (noExec ? MFD_NOEXEC_SEAL : MFD_EXEC);
        scratch.Reset();
        return syscalls.Call($"memfd_create({name}, 0x{flags:x}) for {user}", SYS_memfd_create, scratch.PutString(name), flags);
    }
}
