using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Microsoft.Win32.SafeHandles;
using static Ckpt.Engine.Linux.Userfaultfd;

namespace Ckpt.Engine.Memory;

/// <summary>
/// The page server of a lazy restore (<c>ckpt restore --lazy</c>), one engine thread: serves the
/// faults of the restored process's userfaultfd with UFFDIO_COPY from the image (a window of up to
/// 16 pages around the fault; UFFDIO_ZEROPAGE where the image has no page), follows the process's
/// own changes to its address space (unmap, discard, remap, fork), and once the process is released
/// fills the remaining pages in address order, 1 MiB per call, answering faults between calls.
/// When every page is in and the image's checksum has matched, it unregisters the ranges, closes the
/// process's copy of the userfaultfd (by injection, <see cref="LazyMemory.CloseInProcess"/>) and
/// completes. A checksum mismatch kills the process (SIGKILL) and completes with the
/// <see cref="ImageFormatException"/>.
/// Until then the process holds its userfaultfd: if the engine dies, its faults on missing pages
/// wait forever (a SIGKILL still ends it); it never runs on with zero pages where the image had data.
/// `ckpt restore --lazy` restores the process in one engine and hands the serving over to a page
/// server process started meanwhile (<see cref="HandOver"/>, <see cref="Adopt"/>, <see cref="LazyHandover"/>).
/// </summary>
public sealed unsafe class LazyPageServer
{
    private const int PageSize = 4096, FaultWindowPages = 16, FillPages = 256, PollMilliseconds = 10;

    private readonly SafeFileHandle _image;
    private readonly Func<bool> _checksumMatches;
    private readonly Func<ImageFormatException> _mismatch; // made when needed: its message is formatted, on the return's path
    private readonly List<Space> _spaces = [];
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _filling, _stopping, _handingOver;
    private int _wake = (int)Native.syscall3(SyscallNumbers.SYS_eventfd2, 0, 0x80800, 0); // EFD_CLOEXEC | EFD_NONBLOCK: ends a poll early
    private readonly object _wakeLock = new();
    private Thread? _thread;
    // Grown on first use (a fault window, then 1 MiB for the fill): `ckpt restore --lazy` itself only
    // serves the few faults before its handover, and a 1 MiB array made at once costs its return ~256 page faults.
    private byte[] _buffer = [];
    private readonly byte[] _zeros = new byte[PageSize];

    /// <summary>
    /// One address space served: the process (0 if a forked child could not be found), the engine's
    /// descriptor of its userfaultfd, and the descriptor the process holds (<paramref name="heldFd"/>
    /// in the process, the same file as the engine's <paramref name="heldUffd"/>: its own userfaultfd,
    /// or for a forked child its parent's, inherited).
    /// </summary>
    private sealed class Space(int pid, int uffd, int heldFd, int heldUffd, LazyPages pages)
    {
        public int Pid { get; } = pid;
        public int Uffd { get; } = uffd;
        public int HeldFd { get; } = heldFd;
        public int HeldUffd { get; } = heldUffd;
        public LazyPages Pages { get; } = pages;
        public bool Gone { get; set; }
    }

    /// <param name="checksumMatches">blocks until the whole image is hashed; false on a mismatch</param>
    /// <param name="mismatch">the error of a checksum that did not match</param>
    public LazyPageServer(SafeFileHandle image, Func<bool> checksumMatches, Func<ImageFormatException> mismatch)
    {
        _image = image;
        _checksumMatches = checksumMatches;
        _mismatch = mismatch;
    }

    /// <summary>Where the image's checksum is (the tail's offset) and what it must be: for a page server that takes over.</summary>
    public (long TailOffset, ulong Checksum) ImageTail { get; init; }

    /// <summary>The image the pages are read from.</summary>
    public SafeFileHandle Image => _image;

    /// <summary>
    /// One address space served, as handed from one page server to another: the process, the
    /// server's descriptor of its userfaultfd, the descriptor the process holds and the server's
    /// descriptor of that same file (the one to compare it with), the pages still missing.
    /// </summary>
    public readonly record struct ServedSpace(int Pid, int Uffd, int HeldFd, int HeldUffd, LazyPages Pages, bool Gone);

    /// <summary>A page server for address spaces another one served until now (<see cref="HandOver"/>); it serves at once.</summary>
    public static LazyPageServer Adopt(SafeFileHandle image, Func<bool> checksumMatches, Func<ImageFormatException> mismatch, IEnumerable<ServedSpace> spaces)
    {
        var server = new LazyPageServer(image, checksumMatches, mismatch);
        foreach (ServedSpace s in spaces)
            server._spaces.Add(new Space(s.Pid, s.Uffd, s.HeldFd, s.HeldUffd, s.Pages) { Gone = s.Gone });
        if (server._spaces.Count > 0) server.StartThread();
        return server;
    }

    /// <summary>
    /// Stops serving at a message boundary (faults not read yet wait in the userfaultfd), gives the
    /// spaces to <paramref name="send"/> (every descriptor still open), then closes its userfaultfds and
    /// completes: the engine that restored the process hands it to the page server process, which
    /// serves from then on.
    /// Throws if serving had failed (the process was killed).
    /// </summary>
    public void HandOver(Action<IReadOnlyList<ServedSpace>> send)
    {
        _handingOver = true;
        Wake();
        _thread?.Join();
        if (_completion.Task.IsFaulted) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_completion.Task.Exception!.InnerException!);
        try
        {
            send(_spaces.Select(s => new ServedSpace(s.Pid, s.Uffd, s.HeldFd, s.HeldUffd, s.Pages, s.Gone)).ToList());
        }
        finally
        {
            foreach (Space space in _spaces) Native.close(space.Uffd); // sent: the server process holds them now
            Complete(null);
        }
    }

    /// <summary>Done when every page is in (or the process is gone); faulted with the reason otherwise.</summary>
    public Task Completion => _completion.Task;

    /// <summary>
    /// Disposed once serving is done (every page in, handed over, stopped or failed), on the thread
    /// that finished it (the restore's plan, which holds the image): a continuation of
    /// <see cref="Completion"/> would start thread pool threads, and `ckpt restore --lazy` would wait for them.
    /// </summary>
    public IDisposable? OwnedUntilDone { get => _owned; set => _owned = value; }

    private IDisposable? _owned;

    private void Complete(Exception? failure)
    {
        try
        {
            if (failure is null) _completion.TrySetResult();
            else _completion.TrySetException(failure);
        }
        finally
        {
            Interlocked.Exchange(ref _owned, null)?.Dispose();
        }
    }

    /// <summary>Pages not in yet, over every address space served.</summary>
    public long RemainingPages { get { lock (_spaces) return _spaces.Sum(s => s.Gone ? 0 : s.Pages.RemainingPages); } }

    /// <summary>Serves <paramref name="pid"/>'s faults from now on (the thread starts with the first space).</summary>
    public void Serve(int pid, int uffd, int targetFd, LazyPages pages)
    {
        lock (_spaces) _spaces.Add(new Space(pid, uffd, targetFd, uffd, pages));
        if (_spaces.Count == 1) StartThread();
    }

    private void StartThread()
    {
        _thread = new Thread(Run, 1 << 20) { Name = "ckpt page server", IsBackground = true };
        _thread.Start();
    }

    // Under the lock: the thread closes the eventfd when it ends, and its number may be reused.
    private void Wake()
    {
        ulong one = 1;
        lock (_wakeLock)
            if (_wake >= 0) Native.write(_wake, (byte*)&one, sizeof(ulong));
    }

    private void CloseWake()
    {
        lock (_wakeLock)
        {
            if (_wake >= 0) Native.close(_wake);
            _wake = -1;
        }
    }

    /// <summary>Runs first in <see cref="StartFilling"/> (the restore starts the image's hash with it).</summary>
    public Action? BeforeFilling { get; set; }

    /// <summary>The process was released and the caller told: fill the rest in address order from now on.</summary>
    public void StartFilling()
    {
        BeforeFilling?.Invoke();
        _filling = true;
    }

    /// <summary>The restore failed: stop serving (the half-made process is being killed).</summary>
    public void Stop()
    {
        _stopping = true;
        Wake();
    }

    private void Run()
    {
        try
        {
            Serve();
        }
        finally
        {
            CloseWake();
        }
    }

    private void Serve()
    {
        try
        {
            while (!_stopping && !_handingOver)
            {
                bool served = ServeMessages();
                if (_filling)
                {
                    if (!FillOneBatch()) break;
                }
                else if (!served) WaitForMessages();
            }
            if (_handingOver) return; // the descriptors go to the page server process (HandOver)
            if (_stopping)
            {
                foreach (Space space in _spaces) Native.close(space.Uffd);
                Complete(null);
                return;
            }
            Finish();
            Complete(null);
        }
        catch (LazyRestoreIncompleteException e)
        {
            Complete(e.InnerException!);
        }
        catch (Exception e)
        {
            // Pages are missing and nobody will serve them (or the image is damaged): end the process
            // rather than leave it waiting forever on its first missing page.
            KillAll();
            Complete(e);
        }
    }

    private void WaitForMessages()
    {
        Span<Native.PollFd> fds = stackalloc Native.PollFd[_spaces.Count + 1];
        for (int i = 0; i < _spaces.Count; i++) fds[i] = new Native.PollFd { Fd = _spaces[i].Uffd, Events = Native.POLLIN };
        fds[^1] = new Native.PollFd { Fd = _wake, Events = Native.POLLIN };
        fixed (Native.PollFd* p = fds) Native.poll(p, (nuint)fds.Length, PollMilliseconds);
    }

    // Reads and answers every pending message of every space; true if there was any.
    private bool ServeMessages()
    {
        bool any = false;
        Span<Message> messages = stackalloc Message[64];
        for (int s = 0; s < _spaces.Count; s++)
        {
            Space space = _spaces[s];
            if (space.Gone) continue;
            int count;
            while ((count = Read(space.Uffd, messages)) > 0)
            {
                any = true;
                for (int i = 0; i < count; i++) Handle(space, messages[i]);
            }
        }
        return any;
    }

    private void Handle(Space space, in Message message)
    {
        switch (message.Event)
        {
            case EventPagefault:
                ServeFault(space, message.Argument1 & ~(ulong)(PageSize - 1), (message.Argument0 & PagefaultFlagWrite) != 0);
                break;
            case EventRemove or EventUnmap:
                space.Pages.Drop(message.Argument0, message.Argument1);
                break;
            case EventRemap:
                space.Pages.Move(message.Argument0, message.Argument1, message.Argument2);
                break;
            case EventFork:
                // The child misses the same pages; its own userfaultfd arrived in this process.
                int child = ForkedChild(space);
                lock (_spaces) _spaces.Add(new Space(child, (int)message.Argument0, space.HeldFd, space.HeldUffd, space.Pages.Clone()));
                break;
        }
    }

    private void ServeFault(Space space, ulong page, bool write)
    {
        LazyPages.Stretch? stretch = space.Pages.Around(page, FaultWindowPages);
        if (stretch is { } s)
        {
            Copy(space, s);
            return;
        }
        // Not a page of the image (or one the process discarded): zeros, as a fresh mapping reads.
        fixed (byte* zeros = _zeros)
        {
            long done = write ? Userfaultfd.Copy(space.Uffd, page, zeros, PageSize) : ZeroPage(space.Uffd, page, PageSize);
            if (done < 0 && done != -Errno.EEXIST) Failed(space, done, $"zero page at 0x{page:x}");
        }
    }

    // The next missing stretch of any space, in address order; false once none is left.
    private bool FillOneBatch()
    {
        for (int s = 0; s < _spaces.Count; s++)
        {
            Space space = _spaces[s];
            if (space.Gone || space.Pages.Next(FillPages) is not { } stretch) continue;
            Copy(space, stretch);
            return true;
        }
        return false;
    }

    private void Copy(Space space, LazyPages.Stretch stretch)
    {
        int length = (int)stretch.Length;
        if (_buffer.Length < length) _buffer = new byte[length];
        for (int done = 0; done < length;)
        {
            int n = RandomAccess.Read(_image, _buffer.AsSpan(done, length - done), stretch.ContentsOffset + done);
            if (n <= 0) throw new ImageFormatException(null, stretch.ContentsOffset + done, "the image ends inside page contents");
            done += n;
        }
        fixed (byte* source = _buffer)
        {
            for (ulong done = 0; done < stretch.Length;)
            {
                long copied = Userfaultfd.Copy(space.Uffd, stretch.Address + done, source + done, stretch.Length - done);
                if (copied == -Errno.EAGAIN) { ServeMessages(); return; } // the process is changing its mappings: events first
                if (copied == -Errno.EEXIST) copied = PageSize;            // the page is there already
                else if (copied < 0) { Failed(space, copied, $"{stretch.Pages} pages at 0x{stretch.Address + done:x}"); return; }
                space.Pages.MarkFilled(stretch.Address + done, (int)((ulong)copied / PageSize));
                done += (ulong)copied;
            }
        }
    }

    // ENOENT/ESRCH: the address space is gone (the process exited or exec'ed): nothing left to serve there.
    private void Failed(Space space, long error, string what)
    {
        if (error is -Errno.ENOENT or -Errno.ESRCH) { space.Gone = true; return; }
        throw new SyscallException($"ioctl(UFFDIO_COPY) of {what}", (int)-error, space.Pid);
    }

    private void Finish()
    {
        if (!_checksumMatches()) throw _mismatch();
        // Every page is in: the process no longer needs us, so a failure from here on leaves it running.
        Exception? failure = null;
        foreach (Space space in _spaces)
        {
            if (space.Pid <= 0 || space.Gone) continue;
            try
            {
                // Unregistered first: the injection reads and writes the stack below the stack pointer,
                // where a page the image never had would still be "missing" to the kernel.
                LazyMemory.UnregisterAll(space.Pid, space.Uffd);
                LazyMemory.CloseInProcess(space.Pid, space.HeldFd, space.HeldUffd);
            }
            catch (Exception e) when (e is not OutOfMemoryException) { failure ??= e; }
        }
        // Then ours; the last close unregisters the ranges.
        foreach (Space space in _spaces) Native.close(space.Uffd);
        if (failure is not null) throw new LazyRestoreIncompleteException(failure);
    }

    private void KillAll()
    {
        foreach (Space space in _spaces)
            if (space.Pid > 0) Native.kill(space.Pid, Native.SIGKILL);
    }

    // The fork event names the child's userfaultfd, not its pid: the oldest child of any thread of
    // the parent that is not served yet and holds the parent's descriptor (inherited by the fork).
    private int ForkedChild(Space parent)
    {
        var candidates = new List<(long Start, int Pid)>();
        foreach (string task in Directory.EnumerateDirectories($"/proc/{parent.Pid}/task"))
        {
            string children;
            try { children = File.ReadAllText(Path.Combine(task, "children")); }
            catch (IOException) { continue; }
            foreach (string child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                int pid = int.Parse(child, System.Globalization.CultureInfo.InvariantCulture);
                if (_spaces.Any(s => s.Pid == pid)) continue;
                if (Native.kcmp(Environment.ProcessId, pid, Native.KCMP_FILE, parent.HeldUffd, parent.HeldFd) != 0) continue;
                candidates.Add((StartTime(pid), pid));
            }
        }
        return candidates.Count == 0 ? 0 : candidates.Min().Pid;
    }

    private static long StartTime(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException) { return long.MaxValue; }
    }
}

/// <summary>Every page is in but the process's userfaultfd could not be closed: it runs on, holding that descriptor.</summary>
internal sealed class LazyRestoreIncompleteException(Exception inner) : Exception(inner.Message, inner);
