using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The process-wide state that has no /proc source, read by syscall injection into the stopped
/// leader in one <see cref="RemoteSyscall"/> session: signal handlers (rt_sigaction with a NULL new
/// action), the three itimers, the program break, securebits, the dumpable flag and the membarrier
/// registrations (per mm), and the child-subreaper flag. Per-thread injected state
/// (alternate signal stack, clear_child_tid) is read by <see cref="ThreadCheckpoint"/>.
/// </summary>
public sealed record InjectedTaskState(
    SignalActionRecord[] Actions,
    (long ValueNs, long IntervalNs)[] Itimers,
    ulong Brk,
    uint SecureBits,
    int Dumpable,
    MembarrierRegistrations Membarrier)
{
    public const int SignalCount = 64;

    /// <summary>prctl(PR_GET_CHILD_SUBREAPER): orphaned descendants are reparented to this process.</summary>
    public bool ChildSubreaper { get; init; }
    private const int SIGCHLD = 17;
    private const ulong PR_GET_SECUREBITS = 27, PR_GET_DUMPABLE = 3;

    public static InjectedTaskState Read(Tracee tracee, ulong syscallAddress)
    {
        using var remote = RemoteSyscall.Begin(tracee, syscallAddress);
        MembarrierRegistrations membarrier = InjectedProbes.CheckProcess(remote, tracee.Pid);
        var actions = new SignalActionRecord[SignalCount];
        // Only actions that can differ from a plain SIG_DFL are read by injection: caught (SigCgt)
        // and ignored (SigIgn) signals, and SIGCHLD (SA_NOCLDSTOP/SA_NOCLDWAIT act with SIG_DFL too).
        // Flags or a mask set with SIG_DFL on any other signal change nothing the kernel does, and
        // each injected call costs two ptrace stops: a tree of a hundred processes saves thousands.
        ProcStatus status = ProcStatus.Read(tracee.Pid);
        ulong read = status.HexNumber("SigCgt") | status.HexNumber("SigIgn") | 1ul << (SIGCHLD - 1);
        for (int signal = 1; signal <= SignalCount; signal++)
        {
            if ((read >> (signal - 1) & 1) == 0)
            {
                actions[signal - 1] = new SignalActionRecord { Signal = signal };
                continue;
            }
            remote.Call($"rt_sigaction({signal})", SYS_rt_sigaction, (ulong)signal, 0, remote.Scratch, 8);
            var action = remote.ReadScratch<KernelSigaction>(0);
            actions[signal - 1] = new SignalActionRecord
            {
                Signal = signal, Handler = action.Handler, Flags = action.Flags, Restorer = action.Restorer, Mask = action.Mask,
            };
        }

        var itimers = new (long, long)[3];
        for (int which = 0; which < 3; which++)
        {
            remote.Call($"getitimer({which})", SYS_getitimer, (ulong)which, remote.Scratch);
            var value = remote.ReadScratch<Itimerval>(0);
            itimers[which] = (value.ValueSeconds * 1_000_000_000 + value.ValueMicroseconds * 1000,
                value.IntervalSeconds * 1_000_000_000 + value.IntervalMicroseconds * 1000);
        }

        ulong brk = (ulong)remote.Call("brk(0)", SYS_brk, 0);
        uint secureBits = (uint)remote.Call("prctl(PR_GET_SECUREBITS)", SYS_prctl, PR_GET_SECUREBITS);
        int dumpable = (int)remote.Call("prctl(PR_GET_DUMPABLE)", SYS_prctl, PR_GET_DUMPABLE);
        return new InjectedTaskState(actions, itimers, brk, secureBits, dumpable, membarrier) { ChildSubreaper = ParentLinks.ReadChildSubreaper(remote) };
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct KernelSigaction
    {
        public ulong Handler, Flags, Restorer, Mask;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Itimerval
    {
        public long IntervalSeconds, IntervalMicroseconds, ValueSeconds, ValueMicroseconds;
    }
}
