using System.Runtime.InteropServices;
using System.Text;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Creates a process with a chosen pid that has executed a program but run none of its code:
/// it is ptrace-attached to the calling thread and stopped at PTRACE_EVENT_EXEC, its address
/// space holding only the executable, the dynamic loader, the stack, vdso and vvar.
/// Call it on the thread that will do every later ptrace request for the process.
/// </summary>
public static unsafe class ProcessCreation
{
    public const int PTRACE_O_TRACESYSGOOD = 1, PTRACE_O_TRACEFORK = 2, PTRACE_O_TRACECLONE = 8, PTRACE_O_TRACEEXEC = 0x10, PTRACE_O_EXITKILL = 0x100000;
    private const int PTRACE_SEIZE = 0x4206, PTRACE_EVENT_EXEC = 4;

    /// <param name="pid">the pid the process must get (needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN)</param>
    /// <param name="executablePath">the program to execute, normally the image's exe</param>
    /// <param name="reparentToCaller">become a child subreaper so the process is reparented to this
    /// process (and can be waited for) when its short-lived parent exits</param>
    public static void CreateStoppedAtExec(int pid, string executablePath, bool reparentToCaller)
    {
        if (pid <= 0)
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "a pid must be positive");
        if (reparentToCaller && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
            throw new SyscallException("prctl(PR_SET_CHILD_SUBREAPER)", Marshal.GetLastPInvokeError(), Environment.ProcessId);

        int* pipe = stackalloc int[2];
        if (pipe2(pipe, O_CLOEXEC) != 0)
            throw new SyscallException("pipe2", Marshal.GetLastPInvokeError(), Environment.ProcessId);
        try
        {
            int intermediate = Fork(pid, executablePath, pipe[0], pipe[1]);
            close(pipe[0]);
            pipe[0] = -1;
            WaitForIntermediate(intermediate, pid);
            AttachAndRelease(pid, pipe[1], executablePath);
        }
        finally
        {
            if (pipe[0] >= 0) close(pipe[0]);
            close(pipe[1]);
        }
    }

    private static int Fork(int pid, string executablePath, int readFd, int writeFd)
    {
        byte[] pathBytes = Encoding.UTF8.GetBytes(executablePath + "\0");
        int* setTid = stackalloc int[1];
        setTid[0] = pid;
        var cloneArgs = new CloneArgs { ExitSignal = SIGCHLD, SetTid = (ulong)setTid, SetTidSize = 1 };
        fixed (byte* path = pathBytes)
        {
            byte** argv = stackalloc byte*[2];
            argv[0] = path;
            argv[1] = null;
            byte** envp = stackalloc byte*[1];
            envp[0] = null;
            var arguments = new SpawnArguments
            {
                CloneArguments = &cloneArgs,
                CloneArgumentsSize = (ulong)sizeof(CloneArgs),
                PipeReadFd = readFd,
                PipeWriteFd = writeFd,
                Path = path,
                Argv = argv,
                Envp = envp,
                BlockAllSignals = ulong.MaxValue,
            };
            long result = ProcessCreationRoutine.Run(&arguments);
            if (result < 0)
                throw new SyscallException("fork", (int)-result, Environment.ProcessId, "intermediate process for the restore");
            return (int)result;
        }
    }

    // The intermediate's exit status is clone3's errno (0: the pid was created).
    private static void WaitForIntermediate(int intermediate, int pid)
    {
        int status;
        while (waitpid(intermediate, &status, WALL) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
                throw new SyscallException("waitpid", errno, intermediate, "intermediate process for the restore");
        }
        if (!WaitStatus.Exited(status))
            throw new InvalidOperationException($"intermediate process {intermediate} for the restore {WaitStatus.Describe(status)}");
        int cloneErrno = WaitStatus.ExitCode(status);
        if (cloneErrno == Errno.EEXIST)
            throw new PidInUseException(pid, ProcessNames.CommOf(pid));
        if (cloneErrno != 0)
            throw new SyscallException("clone3(set_tid)", cloneErrno, pid,
                cloneErrno == Errno.EPERM ? "needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN" : null);
    }

    private static void AttachAndRelease(int pid, int pipeWriteFd, string executablePath)
    {
        // TRACECLONE: threads the restore creates by injected clone3 start attached and stopped;
        // TRACEFORK: so do child processes (clone3 with exit signal SIGCHLD), with these same options.
        long options = PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK;
        if (ptrace(PTRACE_SEIZE, pid, 0, (nint)options) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            kill(pid, SIGKILL);
            throw new SyscallException("ptrace(PTRACE_SEIZE)", errno, pid);
        }
        byte go = 1;
        if (write(pipeWriteFd, &go, 1) != 1)
        {
            int errno = Marshal.GetLastPInvokeError();
            kill(pid, SIGKILL);
            throw new SyscallException("write", errno, pid, "release pipe of the new process");
        }
        int status = WaitForStop(pid);
        if (WaitStatus.Stopped(status) && WaitStatus.StopSignal(status) == SIGTRAP
            && WaitStatus.PtraceEvent(status) == PTRACE_EVENT_EXEC)
            return;
        kill(pid, SIGKILL);
        if (WaitStatus.Exited(status) && WaitStatus.ExitCode(status) == 127)
            throw new InvalidOperationException($"the new process {pid} could not execute {executablePath}");
        throw new InvalidOperationException($"the new process {pid} {WaitStatus.Describe(status)} before reaching execve of {executablePath}");
    }

    /// <summary>waitpid(__WALL) retried on EINTR; returns the status.</summary>
    internal static int WaitForStop(int pid)
    {
        int status;
        while (waitpid(pid, &status, WALL) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
                throw new SyscallException("waitpid", errno, pid);
        }
        return status;
    }
}

/// <summary>The pid an image needs belongs to a live process or thread.</summary>
public sealed class PidInUseException(int pid, string holderComm)
    : Exception($"pid {pid} is in use by '{holderComm}'")
{
    public int Pid { get; } = pid;
    public string HolderComm { get; } = holderComm;
}

public static class ProcessNames
{
    /// <summary>The comm of a pid (or thread id), or "?" if it vanished meanwhile.</summary>
    public static string CommOf(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n'); }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }
}
