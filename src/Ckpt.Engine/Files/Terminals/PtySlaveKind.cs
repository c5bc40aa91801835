using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// A pseudo-terminal slave (/dev/pts/N) whose master a process of the tree holds: an end of a pair
/// (<see cref="PtyMasterKind"/>). Restore: opened from the new pair's master with TIOCGPTPEER (no
/// path: the new pair's index differs, and the node is the pair's own), with the recorded access mode
/// and O_NONBLOCK, never becoming a controlling terminal by the open (the session leader takes it
/// with TIOCSCTTY when it is created, <see cref="TerminalsRestore"/>).
/// </summary>
public sealed class PtySlaveKind : IDescriptorKind
{
    private const ulong O_ACCMODE = 3, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_APPEND = 0x400;

    public bool Matches(DescriptorInfo fd) => MasterOf(fd) is not null;

    private static (int Pid, int Fd)? MasterOf(DescriptorInfo fd) =>
        PseudoTerminals.SlaveIndex(fd.Stat) is { } index && fd.Target == $"/dev/pts/{index}" && fd.Stat.Device == PseudoTerminals.DevptsDevice()
            ? PseudoTerminals.FindMaster(fd.TreePids ?? [fd.Pid], index) : null;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        int index = PseudoTerminals.SlaveIndex(fd.Stat)!.Value;
        (int Pid, int Fd) master = MasterOf(fd) ?? throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid}: the master of {fd.Target} was closed meanwhile");
        ObjectTable objects = fd.Objects ?? throw new InvalidOperationException("a terminal end needs the checkpoint's object table");
        int pairRef = objects.RefOf(ObjectType.Terminal, index);
        var (pair, output) = PseudoTerminals.ReadPair(pairRef, index, master, (fd.Pid, fd.Fd), $"fd {fd.Fd} of process {fd.Pid} ({fd.Target})", objects, fd.TreePids ?? [fd.Pid], fd.DryRun);
        return new PtyMasterKind.InspectedEnd(OpenFileRecords.Record(objRef, FileKind.PtySlave, fd.Stat, fd.Target, fd.FdInfo.Flags, 0), fd.Target, pair, output, objects);
    }

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.PtySlave;

    public void Validate(FileImage file, int fd)
    {
        if (file.Terminal is null) throw new RestoreRefusedException($"fd {fd} is a pseudo-terminal slave without its pair (TERMINAL record)");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("a pseudo-terminal slave is opened from its pair's master (FileCreation.Elsewhere)");

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        long master = TerminalsRestore.FetchMaster(syscalls, file.Terminal!, creation.Elsewhere, $"fd {fd} ({file.Path})");
        try
        {
            ulong flags = file.Record.OpenFlags & (O_ACCMODE | O_NONBLOCK | O_APPEND) | O_NOCTTY;
            return syscalls.Call($"ioctl(TIOCGPTPEER) for fd {fd} ({file.Path})", SYS_ioctl, (ulong)master, PseudoTerminals.TIOCGPTPEER, flags);
        }
        finally
        {
            syscalls.CallRaw(SYS_close, (ulong)master);
        }
    }
}
