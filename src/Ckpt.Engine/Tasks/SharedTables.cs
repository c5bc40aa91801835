using Ckpt.Engine.Linux;
using Ckpt.Image.Model;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// One live process of a tree as the creation plan sees it: ids, and which descriptor table, fs
/// information, address space and signal handlers it uses (equal keys: the same kernel object, shared by
/// clone with CLONE_FILES / CLONE_FS / CLONE_VM / CLONE_SIGHAND).
/// </summary>
public sealed record TreeMember(int Pid, int Ppid, int Sid, long FileTable, long Fs, long Vm, long Sighand);

/// <summary>
/// How a restore makes one process: forked by <see cref="Creator"/> (0: the root, made by the engine or a
/// leader helper) with CLONE_FILES, CLONE_FS, CLONE_VM, CLONE_SIGHAND for what it shares with an earlier
/// process, and with CLONE_PARENT when the creator is a sibling (the new process is then the creator's
/// parent's child). A process made with CLONE_FILES or CLONE_VM is not exec'ed (execve unshares the
/// descriptor table, begin_new_exec's unshare_files, and gives the process a new address space and its own
/// handlers): it stays a copy of its creator's fresh neutral program, which the later stages treat like an
/// exec'ed one (the special-mappings stage unmaps everything but the vdso and the process's scratch area);
/// one sharing the address space is that very program, whose memory the first sharer restores.
/// </summary>
public sealed record CreationStep(int Pid, int Creator, bool SharesFiles, bool SharesFs, bool AsSibling, bool SharesVm = false, bool SharesSighand = false)
{
    public bool Execs => !SharesFiles && !SharesVm;
}

/// <summary>
/// Descriptor tables (files_struct) and fs information (fs_struct: cwd, root, umask) shared by processes
/// of one tree, both sides. Sharing comes only from clone (there is no call that joins another process's
/// table), so the restore must make each later sharer by a clone from a process that already holds the
/// object: the first sharer in tree order restores the object once (its descriptors, its cwd and umask),
/// every later one is forked from its parent, or from an earlier sibling with CLONE_PARENT, with
/// CLONE_FILES / CLONE_FS (<see cref="Plan"/>). Sharing no such creator can reproduce (a sharer whose
/// parent and earlier siblings do not share, e.g. one reparented to a subreaper) is refused by name, at
/// checkpoint time (before anything is written) and again at restore time (the image is untrusted).
/// Address spaces (CLONE_VM without CLONE_THREAD) and signal handlers (CLONE_SIGHAND, which clone allows
/// only with CLONE_VM) are planned the same way: the first sharer restores the memory (and the handlers),
/// every later one is forked sharing them by a process that already does (and is not exec'ed).
/// </summary>
public static class SharedTables
{
    /// <summary>The creation of every member, in tree order (members[0] is the root); throws <see cref="SharingNotCreatableException"/>.</summary>
    public static IReadOnlyDictionary<int, CreationStep> Plan(IReadOnlyList<TreeMember> members)
    {
        var steps = new Dictionary<int, CreationStep>();
        var firstFiles = new Dictionary<long, TreeMember>();
        var firstFs = new Dictionary<long, TreeMember>();
        var firstVm = new Dictionary<long, TreeMember>();
        var firstSighand = new Dictionary<long, TreeMember>();
        var byPid = new Dictionary<int, TreeMember>();
        foreach (TreeMember member in members)
        {
            bool sharesFiles = !firstFiles.TryAdd(member.FileTable, member);
            bool sharesFs = !firstFs.TryAdd(member.Fs, member);
            bool sharesVm = !firstVm.TryAdd(member.Vm, member);
            bool sharesSighand = !firstSighand.TryAdd(member.Sighand, member);
            byPid[member.Pid] = member;
            if (sharesSighand && !sharesVm)
                throw new SharingNotCreatableException($"process {member.Pid} shares its signal handlers with process {firstSighand[member.Sighand].Pid} but not its memory: clone makes no such sharing (CLONE_SIGHAND requires CLONE_VM)");
            if (steps.Count == 0 || (!sharesFiles && !sharesFs && !sharesVm))
            {
                // The root is made by the engine; a process that shares nothing is forked by its parent, as always.
                steps[member.Pid] = new CreationStep(member.Pid, steps.Count == 0 ? 0 : member.Ppid, false, false, false);
                continue;
            }
            TreeMember? creator = Candidates(member, members, byPid).FirstOrDefault(c =>
                (!sharesFiles || c.FileTable == member.FileTable) && (!sharesFs || c.Fs == member.Fs) &&
                (!sharesVm || c.Vm == member.Vm) && (!sharesSighand || c.Sighand == member.Sighand) &&
                (member.Sid == member.Pid || member.Sid == c.Sid));
            if (creator is null)
            {
                var shared = new List<(string What, int With)>();
                if (sharesFiles) shared.Add(("descriptor table (CLONE_FILES)", firstFiles[member.FileTable].Pid));
                if (sharesFs) shared.Add(("fs information (CLONE_FS: cwd, root, umask)", firstFs[member.Fs].Pid));
                if (sharesVm) shared.Add(("memory (CLONE_VM)", firstVm[member.Vm].Pid));
                if (sharesSighand) shared.Add(("signal handlers (CLONE_SIGHAND)", firstSighand[member.Sighand].Pid));
                string what = string.Join(" and ", shared.Select(s => s.What));
                bool several = shared.Count > 1;
                throw new SharingNotCreatableException($"process {member.Pid} shares its {what} with process {shared[0].With}, but neither its parent {member.Ppid} nor an earlier sibling shares {(several ? "them all" : "it")} in its session: a restore could not fork it sharing {(several ? "them" : "it")} (sharing is made only by clone)");
            }
            steps[member.Pid] = new CreationStep(member.Pid, creator.Pid, sharesFiles, sharesFs, creator.Pid != member.Ppid, sharesVm, sharesSighand);
        }
        return steps;
    }

    // The parent first, then the siblings made before this process (tree order: each before its later siblings).
    private static IEnumerable<TreeMember> Candidates(TreeMember member, IReadOnlyList<TreeMember> members, Dictionary<int, TreeMember> made)
    {
        if (made.TryGetValue(member.Ppid, out TreeMember? parent)) yield return parent;
        foreach (TreeMember sibling in members.TakeWhile(m => m.Pid != member.Pid).Where(m => m.Ppid == member.Ppid))
            yield return sibling;
    }

    // ---- checkpoint ----

    /// <summary>
    /// The owner of each process's descriptor table and fs information: the first process in tree order
    /// that uses the same object (kcmp KCMP_FILES / KCMP_FS: <see cref="KcmpIndex"/>), the process
    /// itself when it shares nothing.
    /// </summary>
    public static (Dictionary<int, int> FileTable, Dictionary<int, int> Fs) Owners(IReadOnlyList<int> live) =>
        (OwnersOf(live, Native.KCMP_FILES, "descriptor table"), OwnersOf(live, Native.KCMP_FS, "fs information"));

    /// <summary>The owner of each process's address space and signal handlers (kcmp KCMP_VM / KCMP_SIGHAND), as <see cref="Owners"/>.</summary>
    public static (Dictionary<int, int> Vm, Dictionary<int, int> Sighand) MemoryOwners(IReadOnlyList<int> live) =>
        (OwnersOf(live, Native.KCMP_VM, "memory"), OwnersOf(live, Native.KCMP_SIGHAND, "signal handlers"));

    private static Dictionary<int, int> OwnersOf(IReadOnlyList<int> live, int kcmpType, string what)
    {
        // Owners sorted by kcmp's order: a tree of N processes costs N log N calls, not N^2 / 2.
        var owners = new KcmpIndex(kcmpType, (owner, pid) => Same(owner, pid, kcmpType, what));
        var ownerOf = new Dictionary<int, int>();
        foreach (int pid in live) ownerOf[pid] = owners.Add(pid);
        return ownerOf;
    }

    private static bool Same(int a, int b, int kcmpType, string what)
    {
        int order = Native.kcmp(a, b, kcmpType, 0, 0);
        if (order < 0) throw new SyscallException("kcmp", Native.LastErrno, b, $"comparing the {what} of processes {a} and {b}");
        return order == 0;
    }

    // ---- restore ----

    /// <summary>The image's members for <see cref="Plan"/>: tables by objref, fs by its shared objref (or the process's own).</summary>
    public static List<TreeMember> MembersOf(ImageModel image) => image.Processes
        .Select(p => new TreeMember(p.Pid, p.Task.Ppid, p.Task.Sid, p.FileTable.ObjRef, p.SharedFs is { } fs ? fs.ObjRef : -(long)p.Pid, p.Memory.Mm.ObjRef, p.SignalHandlers.ObjRef))
        .ToList();

    /// <summary>Whether the process restores its address space (and mm fields, special mappings): false for a later sharer of memory.</summary>
    public static bool RestoresMemory(ImageModel image, ProcessImage process) =>
        ReferenceEquals(image.Processes.First(p => ReferenceEquals(p.Memory, process.Memory)), process);

    /// <summary>Whether the process restores its descriptor table: false for a later sharer (an earlier process restores it).</summary>
    public static bool RestoresFileTable(ImageModel image, ProcessImage process) =>
        ReferenceEquals(image.Processes.First(p => ReferenceEquals(p.FileTable, process.FileTable)), process);

    /// <summary>Whether the process sets cwd and umask: false for a later sharer of fs information.</summary>
    public static bool RestoresFs(ProcessImage process) => process.SharedFs is null || process.SharedFs.DefinedBy == process.Pid;
}

/// <summary>A sharing of descriptor tables or fs information that the restore's process creation cannot make.</summary>
public sealed class SharingNotCreatableException(string message) : Exception(message);
