using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The state that has no /proc source, read by syscall injection into the stopped target in one
/// <see cref="RemoteSyscall"/> session: signal handlers (rt_sigaction with a NULL new action), the
/// alternate signal stack, the three itimers, the program break, securebits and clear_child_tid.
/// </summary>
public sealed record InjectedTaskState(
    SignalActionRecord[] Actions,
    SignalStackRecord SignalStack,
    (long ValueNs, long IntervalNs)[] Itimers,
    ulong Brk,
    uint SecureBits,
    ulong ClearChildTid)
{
    public const int SignalCount = 64;
    private const long SYS_brk = 12, SYS_rt_sigaction = 13, SYS_getitimer = 36, SYS_sigaltstack = 131, SYS_prctl = 157;
    private const ulong PR_GET_SECUREBITS = 27, PR_GET_TID_ADDRESS = 40;

    public static InjectedTaskState Read(Tracee tracee)
    {
        using var remote = RemoteSyscall.Begin(tracee);
        var actions = new SignalActionRecord[SignalCount];
        for (int signal = 1; signal <= SignalCount; signal++)
        {
            remote.Call($"rt_sigaction({signal})", SYS_rt_sigaction, (ulong)signal, 0, remote.Scratch, 8);
            var action = remote.ReadScratch<KernelSigaction>(0);
            actions[signal - 1] = new SignalActionRecord
            {
                Signal = signal, Handler = action.Handler, Flags = action.Flags, Restorer = action.Restorer, Mask = action.Mask,
            };
        }

        remote.Call("sigaltstack", SYS_sigaltstack, 0, remote.Scratch);
        var stack = remote.ReadScratch<StackT>(0);

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
        remote.Call("prctl(PR_GET_TID_ADDRESS)", SYS_prctl, PR_GET_TID_ADDRESS, remote.Scratch);
        ulong clearChildTid = remote.ReadScratch<ulong>(0);

        return new InjectedTaskState(actions,
            new SignalStackRecord { StackPointer = stack.Pointer, StackSize = stack.Size, Flags = stack.Flags },
            itimers, brk, secureBits, clearChildTid);
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
