using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// A pseudo-terminal master (/dev/ptmx) whose slave is held by a process of the tree too (a terminal
/// multiplexer's server and its shells, script(1), an expect-like driver). The pair is one object of
/// the object table (ObjectType.Terminal, keyed by its index), written as a TERMINAL record with the
/// pair's first end (<see cref="PseudoTerminals.ReadPair"/>). Refused by name: a master whose slave no
/// process of the tree holds, a pair that is the controlling terminal of a session outside the tree,
/// a pair with unread input or unread output it cannot put back exactly (<see cref="UnreadOutput"/>). Restore: <see cref="TerminalsRestore"/> opened a new pair in the root
/// before any process forked; the master's descriptors get that open file description (pidfd_getfd).
/// </summary>
public sealed class PtyMasterKind : IDescriptorKind
{
    public bool Matches(DescriptorInfo fd) => PseudoTerminals.IsMaster(fd.Stat) && fd.Target is "/dev/ptmx" or "/dev/pts/ptmx";

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        string what = $"fd {fd.Fd} of process {fd.Pid} ({fd.Target})";
        if (!fd.FdInfo.Fields.TryGetValue("tty-index", out string? text) || !int.TryParse(text, out int index))
            throw new CheckpointRefusedException($"{what} is a pseudo-terminal master whose index /proc/{fd.Pid}/fdinfo/{fd.Fd} does not show (tty-index): not checkpointed");
        IReadOnlyCollection<int> tree = fd.TreePids ?? [fd.Pid];
        List<(int Pid, int Fd)> slaves = PseudoTerminals.FindSlaves(tree, index);
        if (slaves.Count == 0)
            throw new CheckpointRefusedException($"{what} is a pseudo-terminal master (of /dev/pts/{index}) whose slave no process being checkpointed holds open: a pair is checkpointed with both ends (close the master, or checkpoint the process holding the slave with it)");
        RefuseOutsideSession(fd, index, tree, what);
        ObjectTable objects = fd.Objects ?? throw new InvalidOperationException("a terminal end needs the checkpoint's object table");
        int pairRef = objects.RefOf(ObjectType.Terminal, index);
        var (pair, output) = PseudoTerminals.ReadPair(pairRef, index, (fd.Pid, fd.Fd), slaves[0], what, objects, tree, fd.DryRun);
        return new InspectedEnd(OpenFileRecords.Record(objRef, FileKind.PtyMaster, fd.Stat, fd.Target, fd.FdInfo.Flags, 0), fd.Target, pair, output, objects);
    }

    // The session a pair controls is recreated by its leader: that leader must be in the tree.
    private static void RefuseOutsideSession(DescriptorInfo fd, int index, IReadOnlyCollection<int> tree, string what)
    {
        int copy = SocketNative.DuplicateFrom(fd.Pid, fd.Fd);
        try
        {
            int session = PseudoTerminals.SessionOf(copy, (fd.Pid, fd.Fd));
            if (session != 0 && !tree.Contains(session))
                throw new CheckpointRefusedException($"{what}: the pseudo-terminal /dev/pts/{index} is the controlling terminal of session {session} ('{ProcessNames.CommOf(session)}'), which is not being checkpointed: checkpoint that session's leader with it");
        }
        finally { Native.close(copy); }
    }

    /// <summary>A FILE of a pair's end, then the pair (and its unread output, if any) on its first use or an OBJREF to it.</summary>
    internal sealed record InspectedEnd(FileRecord File, string Path, TerminalRecord Pair, byte[] Output, ObjectTable Objects) : IInspectedFile
    {
        public void Write(ImageWriter writer)
        {
            writer.Write(File, Encoding.UTF8.GetBytes(Path));
            TerminalRecord pair = Pair;
            byte[] output = Output;
            Objects.WriteUse(writer, ObjectType.Terminal, pair.TerminalObjRef, () =>
            {
                writer.Write(pair);
                if (output.Length > 0) writer.Write(new TerminalOutputRecord { TerminalObjRef = pair.TerminalObjRef, DataLength = (uint)output.Length }, output);
            });
        }
    }

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.PtyMaster;

    public void Validate(FileImage file, int fd)
    {
        if (file.Terminal is null) throw new RestoreRefusedException($"fd {fd} is a pseudo-terminal master without its pair (TERMINAL record)");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("a pseudo-terminal master is opened from the pair the restore made (FileCreation.Elsewhere)");

    /// <summary>The master the root opened for the pair (<see cref="TerminalsRestore"/>), fetched with pidfd_getfd: the same open file description.</summary>
    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation) =>
        TerminalsRestore.FetchMaster(syscalls, file.Terminal!, creation.Elsewhere, $"fd {fd} ({file.Path})");
}
