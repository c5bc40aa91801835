using System.Text;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// A pseudo-terminal slave whose master no process of the tree holds: the user's terminal (a
/// terminal emulator's, sshd's or tmux's pane the process was started in). Its state is not the
/// process's (the terminal outlives it and belongs to whoever holds the master), so only the FILE
/// record is written. A restore refuses it unless asked to put the process on the terminal
/// `ckpt restore` runs on (<see cref="RestorePlan.ShellTerminal"/>, `--shell-terminal`): the
/// descriptor is then that terminal, opened by its path with the recorded access mode and O_NONBLOCK
/// (O_NOCTTY: the controlling terminal is the session's, <see cref="TerminalsRestore"/>).
/// </summary>
public sealed class OutsideTerminalKind : IDescriptorKind
{
    private const ulong O_ACCMODE = 3, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_APPEND = 0x400;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    // After PtySlaveKind in DescriptorKinds.All: a slave whose master is in the tree is a pair's end.
    public bool Matches(DescriptorInfo fd) => PseudoTerminals.SlaveIndex(fd.Stat) is not null;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef) =>
        new Inspected(OpenFileRecords.Record(objRef, FileKind.OutsideTerminal, fd.Stat, fd.Target, fd.FdInfo.Flags, 0), fd.Target);

    private sealed record Inspected(FileRecord File, string Path) : IInspectedFile
    {
        public void Write(ImageWriter writer) => writer.Write(File, Encoding.UTF8.GetBytes(Path));
    }

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.OutsideTerminal;

    public void Validate(FileImage file, int fd) => throw new InvalidOperationException("validated with the plan");

    public void Validate(FileImage file, int fd, RestorePlan plan)
    {
        if (plan.ShellTerminal is null)
            throw new RestoreRefusedException($"process {plan.Pid}: fd {fd} is the terminal {file.Path}, which belonged to no process of the image (the user's terminal): restore with --shell-terminal (Restore-Process -ShellTerminal) to give the process the terminal the restore runs on");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("an outside terminal is opened with the plan (FileCreation)");

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        string terminal = creation.Plan.ShellTerminal ?? throw new InvalidOperationException("no shell terminal: validation refuses this");
        ulong flags = file.Record.OpenFlags & (O_ACCMODE | O_NONBLOCK | O_APPEND) | O_NOCTTY;
        return syscalls.Call($"openat of {terminal} for fd {fd} (it was {file.Path})", SYS_openat, AT_FDCWD, scratch.PutString(terminal), flags, 0);
    }
}
