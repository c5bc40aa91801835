using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The process-wide state that has no /proc source, read by syscall injection into the stopped
/// leader in its <see cref="ProbeBatch"/>: signal handlers (rt_sigaction with a NULL new
/// action), the three itimers, the program break, securebits, the dumpable flag and the membarrier
/// registrations (per mm), and the child-subreaper flag. Per-thread injected state
/// (alternate signal stack, clear_child_tid) is read by <see cref="ThreadProbes"/>.
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

    /// <summary>The calls of <see cref="Add"/> in the leader's batch: per signal the rt_sigaction call, or -1 where none is needed.</summary>
    public sealed record Calls(InjectedProbes.ProcessCalls Probes, int[] Actions, int[] Itimers, int Brk, int SecureBits, int Dumpable, int ChildSubreaper);

    /// <summary>Adds the process's reads to the leader's batch (its status for the signals it handles); <see cref="Read"/> once it ran.</summary>
    public static Calls Add(ProbeBatch batch, ProcStatus status)
    {
        InjectedProbes.ProcessCalls probes = InjectedProbes.AddProcess(batch);
        // Only actions that can differ from a plain SIG_DFL are read by injection: caught (SigCgt)
        // and ignored (SigIgn) signals, and SIGCHLD (SA_NOCLDSTOP/SA_NOCLDWAIT act with SIG_DFL too).
        // Flags or a mask set with SIG_DFL on any other signal change nothing the kernel does.
        ulong read = status.HexNumber("SigCgt") | status.HexNumber("SigIgn") | 1ul << (SIGCHLD - 1);
        var actions = new int[SignalCount];
        for (int signal = 1; signal <= SignalCount; signal++)
        {
            actions[signal - 1] = (read >> (signal - 1) & 1) == 0 ? -1
                : batch.Add($"rt_sigaction({signal})", SYS_rt_sigaction, Marshal.SizeOf<KernelSigaction>(), output => [(ulong)signal, 0, output, 8]);
        }
        var itimers = new int[3];
        for (int which = 0; which < 3; which++)
            itimers[which] = batch.Add($"getitimer({which})", SYS_getitimer, Marshal.SizeOf<Itimerval>(), output => [(ulong)which, output]);
        return new Calls(probes, actions, itimers,
            batch.Add("brk(0)", SYS_brk, 0),
            batch.Add("prctl(PR_GET_SECUREBITS)", SYS_prctl, PR_GET_SECUREBITS),
            batch.Add("prctl(PR_GET_DUMPABLE)", SYS_prctl, PR_GET_DUMPABLE),
            ParentLinks.AddChildSubreaper(batch));
    }

    /// <summary>The state, from the batch that ran the calls of <see cref="Add"/>; a probe's refusal comes first.</summary>
    public static InjectedTaskState Read(ProbeBatch batch, Calls calls, int pid)
    {
        MembarrierRegistrations membarrier = InjectedProbes.CheckProcess(batch, calls.Probes, pid);
        var actions = new SignalActionRecord[SignalCount];
        for (int signal = 1; signal <= SignalCount; signal++)
        {
            int call = calls.Actions[signal - 1];
            if (call < 0)
            {
                actions[signal - 1] = new SignalActionRecord { Signal = signal };
                continue;
            }
            batch.Checked(call);
            var action = batch.Output<KernelSigaction>(call);
            actions[signal - 1] = new SignalActionRecord
            {
                Signal = signal, Handler = action.Handler, Flags = action.Flags, Restorer = action.Restorer, Mask = action.Mask,
            };
        }

        var itimers = new (long, long)[3];
        for (int which = 0; which < 3; which++)
        {
            batch.Checked(calls.Itimers[which]);
            var value = batch.Output<Itimerval>(calls.Itimers[which]);
            itimers[which] = (value.ValueSeconds * 1_000_000_000 + value.ValueMicroseconds * 1000,
                value.IntervalSeconds * 1_000_000_000 + value.IntervalMicroseconds * 1000);
        }

        ulong brk = (ulong)batch.Checked(calls.Brk);
        uint secureBits = (uint)batch.Checked(calls.SecureBits);
        int dumpable = (int)batch.Checked(calls.Dumpable);
        return new InjectedTaskState(actions, itimers, brk, secureBits, dumpable, membarrier) { ChildSubreaper = ParentLinks.ChildSubreaper(batch, calls.ChildSubreaper) };
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
