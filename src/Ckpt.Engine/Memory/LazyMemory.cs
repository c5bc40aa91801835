using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// The restore side of a lazy restore (<c>ckpt restore --lazy</c>): private anonymous memory with
/// saved pages is mapped but not filled; it is registered with a userfaultfd created inside the
/// restored process (an injected userfaultfd(2), without UFFD_USER_MODE_ONLY, so the kernel's own
/// accesses on the process's behalf fault to us too: a read() into a lazy buffer, a futex word, the
/// rseq area), moved above every descriptor of the image and duplicated into the engine with
/// pidfd_getfd. The <see cref="LazyPageServer"/> serves it from then on, during the rest of the
/// restore too (the kernel writes a thread's rseq area as soon as it is registered).
/// The process keeps its copy while pages are missing, so that the engine dying never releases the
/// userfaultfd (the kernel would then map zero pages): faults wait instead. Once every page is in,
/// <see cref="CloseInProcess"/> closes it by injection.
/// </summary>
public static class LazyMemory
{
    private const ulong O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000, F_DUPFD_CLOEXEC = 1030;
    private const ulong Features = Userfaultfd.FeatureEventFork | Userfaultfd.FeatureEventRemap | Userfaultfd.FeatureEventRemove | Userfaultfd.FeatureEventUnmap;

    /// <summary>Memory left to the page server: private anonymous mappings with saved pages.</summary>
    public static bool IsLazy(VmaImage vma) => vma.Record.VmaType == VmaType.Anon && vma.HasSavedPages;

    /// <summary>Creates the process's userfaultfd, registers the lazy mappings and hands them to <paramref name="server"/>.</summary>
    public static void Register(SyscallInjector syscalls, RestorePlan plan, LazyPageServer server)
    {
        int pid = syscalls.Pid;
        long created = syscalls.Call("userfaultfd(O_CLOEXEC | O_NONBLOCK)", SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        // Above every descriptor the image restores, so the files stage never closes it by a dup3.
        ulong above = (ulong)(plan.Descriptors.Count == 0 ? 3 : plan.Descriptors.Max(d => d.Fd) + 1);
        long held = syscalls.Call($"fcntl(F_DUPFD_CLOEXEC, {above}) of the userfaultfd", SYS_fcntl, (ulong)created, F_DUPFD_CLOEXEC, above);
        syscalls.Call("close of the first userfaultfd descriptor", SYS_close, (ulong)created);
        int uffd = DuplicateIntoEngine(pid, (int)held);
        try
        {
            Userfaultfd.Handshake(uffd, Features, pid);
            var runs = new List<(ulong, int, long)>();
            var unread = new List<LazyPages.UnreadMapping>();
            foreach (VmaImage vma in plan.Vmas.Where(IsLazy))
            {
                Userfaultfd.RegisterMissing(uffd, vma.Record.VmStart, vma.Length, pid);
                foreach (PageChunk chunk in vma.Chunks) runs.AddRange(LazyPages.RunsOf(chunk.Addresses, chunk.ContentsOffset));
                // Addresses the model left in the image (a lazy restore does not wait for them): read when first needed.
                if (vma.DeferredChunks.Count > 0) unread.Add(new LazyPages.UnreadMapping(vma.Record.VmStart, vma.Record.VmEnd, vma.DeferredChunks));
            }
            server.Serve(pid, uffd, (int)held, new LazyPages(runs, unread, plan.ImageFile));
        }
        catch
        {
            Native.close(uffd);
            throw;
        }
    }

    private static int DuplicateIntoEngine(int pid, int fd)
    {
        int pidfd = Native.pidfd_open(pid, 0);
        if (pidfd < 0) throw new SyscallException("pidfd_open", Native.LastErrno, pid);
        try
        {
            int duplicate = Native.pidfd_getfd(pidfd, fd);
            if (duplicate < 0) throw new SyscallException($"pidfd_getfd of the userfaultfd (fd {fd})", Native.LastErrno, pid);
            return duplicate;
        }
        finally
        {
            Native.close(pidfd);
        }
    }

    /// <summary>UFFDIO_UNREGISTER of every range of <paramref name="pid"/> still registered for missing pages ("um" in smaps).</summary>
    public static void UnregisterAll(int pid, int uffd)
    {
        List<MapsEntry> mappings;
        try { mappings = ProcMaps.ReadSmaps(pid); }
        catch (IOException) { return; } // gone
        foreach (MapsEntry mapping in mappings.Where(m => m.VmFlagNames.Contains("um")))
            Userfaultfd.Unregister(uffd, mapping.Start, mapping.Length, pid);
    }

    /// <summary>
    /// Closes descriptor <paramref name="fd"/> of the running process <paramref name="pid"/> if it is
    /// still the file the engine holds as <paramref name="engineFd"/>: every thread is frozen, close is
    /// injected into the leader, and they are released as a checkpoint releases them (on a tracer
    /// thread of its own that exits, so the kernel detaches them without waking them).
    /// </summary>
    public static void CloseInProcess(int pid, int fd, int engineFd)
    {
        if (!StillHeld(pid, fd, engineFd)) return; // closed, replaced or exec'ed away by the process itself
        WaitUntilUntraced(pid);
        Exception? failure = null;
        var tids = new List<int> { pid };
        var tracer = new Thread(() =>
        {
            ThreadGroupFreeze? freeze = null;
            try
            {
                freeze = ThreadGroupFreeze.Seize(pid);
                freeze.StopAll();
                tids.AddRange(freeze.Tracees.Select(t => t.Pid));
                if (StillHeld(pid, fd, engineFd))
                {
                    // As at a checkpoint: a thread in an rseq critical section goes to its abort ip first,
                    // or the injected call makes the kernel disarm the section under it.
                    foreach (Tracee tracee in freeze.Tracees) Tasks.RseqCriticalSection.MoveToAbort(tracee);
                    using var remote = RemoteSyscall.Begin(freeze.Leader);
                    remote.Call($"close of the userfaultfd (fd {fd})", SYS_close, (ulong)fd);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failure = Directory.Exists($"/proc/{pid}") ? e : null; // a process that exited has nothing left to close
            }
            finally
            {
                if (freeze?.AnyAttached == true) freeze.ReleaseAll();
            }
        }, 1 << 20) { Name = "ckpt lazy close" };
        tracer.Start();
        tracer.Join();
        TracerExit.WaitUntilDetached(tids);
        if (failure is not null) throw failure;
    }

    // The restore's tracer thread has exited, but on a loaded machine the kernel may take a while to
    // detach every thread; a debugger may hold the process too. Up to 10 s, then the seize says why.
    private static void WaitUntilUntraced(int pid)
    {
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            try
            {
                bool traced = Directory.GetDirectories($"/proc/{pid}/task").Any(task =>
                    File.ReadLines(Path.Combine(task, "status")).Any(l => l.StartsWith("TracerPid:", StringComparison.Ordinal) && l["TracerPid:".Length..].Trim() != "0"));
                if (!traced) return;
            }
            catch (IOException) { return; }
            Thread.Sleep(10);
        }
    }

    private static bool StillHeld(int pid, int fd, int engineFd) =>
        Native.kcmp(Environment.ProcessId, pid, Native.KCMP_FILE, engineFd, fd) == 0;
}
