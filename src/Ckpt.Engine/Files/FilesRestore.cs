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
    private const ulong F_SETFD = 2, FD_CLOEXEC = 1, O_CLOEXEC = 0x80000, F_DUPFD_CLOEXEC = 1030;

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
            DescriptorKinds.ForRestore(file, descriptor.Fd).Validate(file, descriptor.Fd, plan);
        }
    }

    /// <summary>Closes of every descriptor the new task inherited, added to a batch the caller runs (with the next stage's calls).</summary>
    /// <param name="keep">descriptors the restore itself made and still needs (the root's new terminal pairs, TerminalsRestore)</param>
    public static void AddClosesOfInherited(SyscallBatch batch, int pid, IReadOnlyCollection<long>? keep = null)
    {
        // Directory descriptors included (GetFiles would skip them: they link to directories).
        foreach (string entry in Directory.GetFileSystemEntries($"/proc/{pid}/fd"))
        {
            int fd = int.Parse(Path.GetFileName(entry));
            if (keep?.Contains(fd) == true) continue;
            batch.Add($"close of inherited fd {fd}", SYS_close, (ulong)fd);
        }
    }

    /// <param name="elsewhere">file objref -> a process of the tree and a descriptor that already hold
    /// it: a file object shared by processes is created by the first and fetched by the others with
    /// pidfd_getfd (the same open file description, offset and flags). A pipe's objref maps to its
    /// first end placed, which every other end of the pipe is opened from. Objects this process places
    /// first are added.</param>
    /// <param name="mappedFiles">unlinked files the memory stage made for its mappings (file objref -> parked descriptor)</param>
    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, Dictionary<int, (int Pid, int Fd)>? elsewhere = null,
        IReadOnlyDictionary<int, long>? mappedFiles = null, Sockets.TcpConnectionRestore? tcpConnections = null)
    {
        elsewhere ??= [];
        var placed = new Dictionary<int, int>(); // file objref -> first descriptor restored for it
        var created = new HashSet<int>(); // file objrefs this process created (not fetched from another)
        var creation = new FileCreation(syscalls, plan, ParkingFloor(plan), elsewhere) { TcpConnections = tcpConnections };
        if (mappedFiles is not null) creation.AddMapped(mappedFiles);
        // Descriptors fetched from another process and copies of a descriptor placed before: one batch
        // after the loop (a tree's children hold mostly those), the other kinds' calls are made on the way.
        var copies = new DescriptorCopies(new SyscallBatch(syscalls, scratch), ParkingFloor(plan));
        foreach (FileDescriptorRecord descriptor in plan.Descriptors.OrderBy(d => d.Fd))
        {
            scratch.Reset();
            FileImage file = plan.Files[descriptor.FileObjRef];
            ulong cloexec = descriptor.CloseOnExec != 0 ? O_CLOEXEC : 0;
            if (placed.TryGetValue(descriptor.FileObjRef, out int sibling))
            {
                copies.Duplicate(sibling, descriptor.Fd, cloexec, file.Path);
                continue;
            }
            if (elsewhere.TryGetValue(descriptor.FileObjRef, out var holder))
            {
                copies.Fetch(holder.Pid, holder.Fd, descriptor.Fd, cloexec, file.Path);
                placed[descriptor.FileObjRef] = descriptor.Fd;
                continue;
            }
            IDescriptorKind kind = DescriptorKinds.ForRestore(file, descriptor.Fd);
            // A pipe has one object for all its ends (ObjectType.Pipe, an objref of its own): the first
            // end placed in the tree creates it, every other end is opened from that one.
            long opened = creation.TryTake(descriptor.FileObjRef, out long made) ? made
                : file.Pipe is { } pipe && elsewhere.TryGetValue(pipe.Record.PipeObjRef, out var pipeEnd)
                    ? PipeKind.OpenOtherEnd(syscalls, scratch, file, descriptor.Fd, pipeEnd)
                    : kind.Open(syscalls, scratch, file, descriptor.Fd, creation);
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
            created.Add(descriptor.FileObjRef);
            elsewhere[descriptor.FileObjRef] = (syscalls.Pid, descriptor.Fd);
            if (file.Pipe is { } placedPipe) elsewhere.TryAdd(placedPipe.Record.PipeObjRef, (syscalls.Pid, descriptor.Fd));
            if (file.Fifo is { } placedFifo) elsewhere.TryAdd(placedFifo.Record.PipeObjRef, (syscalls.Pid, descriptor.Fd)); // a deleted FIFO's later ends open it there
        }
        copies.Run();
        creation.RequireNothingParked();
        creation.CloseUntakenMapped();
        FinishAll(syscalls, plan, scratch, placed, created);
    }

    /// <summary>Above every descriptor number the image records: a descriptor kept there while the table is rebuilt is never replaced by dup3.</summary>
    public static int ParkingFloor(RestorePlan plan) => plan.Descriptors.Count == 0 ? 0 : plan.Descriptors.Max(d => d.Fd) + 1;

    // pidfd_getfd copies a descriptor of another process as dup would (close-on-exec set): injected
    // into this process, with its restored credentials (the holder is a process of the same tree).
    internal static long FetchFrom(SyscallInjector syscalls, int holderPid, int holderFd, FileImage file)
    {
        long pidfd = syscalls.Call($"pidfd_open({holderPid}) to share {file.Path}", SYS_pidfd_open, (ulong)holderPid, 0);
        try
        {
            return syscalls.Call($"pidfd_getfd of fd {holderFd} of process {holderPid} ({file.Path})", SYS_pidfd_getfd, (ulong)pidfd, (ulong)holderFd, 0);
        }
        finally
        {
            syscalls.CallRaw(SYS_close, (ulong)pidfd);
        }
    }

    // Once every descriptor exists: each file object's state that names other descriptors (an epoll's
    // interest list), the objects it depends on first (an epoll watching an epoll). Only the objects
    // this process created: one fetched from another process was finished there.
    private static void FinishAll(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, Dictionary<int, int> placed, HashSet<int> created)
    {
        var objRefOfFd = plan.Descriptors.ToDictionary(d => d.Fd, d => d.FileObjRef);
        var finished = new HashSet<int>();
        var inProgress = new HashSet<int>();
        void Finish(int objRef)
        {
            if (finished.Contains(objRef) || !created.Contains(objRef)) return;
            if (!inProgress.Add(objRef))
                throw new RestoreRefusedException($"fd {placed[objRef]} ({plan.Files[objRef].Path}) depends on itself through the descriptors it watches");
            FileImage file = plan.Files[objRef];
            IDescriptorKind kind = DescriptorKinds.ForRestore(file, placed[objRef]);
            foreach (int fd in kind.FinishAfter(file))
                if (objRefOfFd.TryGetValue(fd, out int dependency)) Finish(dependency);
            scratch.Reset();
            kind.Finish(syscalls, scratch, file, placed[objRef]);
            finished.Add(objRef);
        }
        foreach (int objRef in placed.Keys.OrderBy(r => placed[r])) Finish(objRef);
    }

    /// <summary>
    /// The descriptors a process takes from others (pidfd_getfd: the same open file description, offset and
    /// flags) and the copies of its own, in one batch (<see cref="SyscallBatch"/>) made after the other
    /// descriptors, in descriptor order. The kernel gives a new descriptor the lowest free number, which
    /// may be one still to be placed: every temporary descriptor (a pidfd, a fetched one) is first moved
    /// above the parking floor (F_DUPFD_CLOEXEC), where no recorded descriptor is, then dup3 places it.
    /// pidfd_getfd is injected with the process's restored credentials (the holder is a process of the
    /// same tree).
    /// </summary>
    private sealed class DescriptorCopies(SyscallBatch batch, int floor)
    {
        private readonly Dictionary<int, int> _pidfds = []; // holder pid -> batch entry of its pidfd above the floor

        public void Duplicate(int sibling, int fd, ulong cloexec, string path) =>
            batch.Add($"dup3 of fd {sibling} to fd {fd} ({path})", SYS_dup3, (ulong)sibling, (ulong)fd, cloexec);

        public void Fetch(int holderPid, int holderFd, int fd, ulong cloexec, string path)
        {
            if (!_pidfds.TryGetValue(holderPid, out int pidfd))
                _pidfds[holderPid] = pidfd = AboveFloor(batch.Add($"pidfd_open({holderPid}) to share {path}", SYS_pidfd_open, (ulong)holderPid, 0), $"pidfd of process {holderPid}");
            int fetched = AboveFloor(batch.Add($"pidfd_getfd of fd {holderFd} of process {holderPid} ({path})", SYS_pidfd_getfd, BatchArgument.Result(pidfd), (ulong)holderFd, 0), $"fd {holderFd} of process {holderPid}");
            batch.Add($"dup3 to fd {fd} ({path})", SYS_dup3, BatchArgument.Result(fetched), (ulong)fd, cloexec);
            batch.Add($"close of the temporary copy of fd {fd}", SYS_close, BatchArgument.Result(fetched));
        }

        private int AboveFloor(int entry, string what)
        {
            int moved = batch.Add($"fcntl(F_DUPFD_CLOEXEC, {floor}) of {what}", SYS_fcntl, BatchArgument.Result(entry), F_DUPFD_CLOEXEC, (ulong)floor);
            batch.Add($"close of {what} below the floor", SYS_close, BatchArgument.Result(entry));
            return moved;
        }

        public void Run()
        {
            foreach (int pidfd in _pidfds.Values) batch.Add("close of a pidfd", SYS_close, BatchArgument.Result(pidfd));
            batch.Run();
        }
    }
}
