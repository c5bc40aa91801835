using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>cwd, umask, resource limits, comm and personality, set by the task itself (injected).</summary>
public static unsafe class TaskStateRestore
{
    private const ulong PR_SET_NAME = 15;
    private static readonly string[] LimitNames =
        ["CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"];

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        syscalls.Call($"chdir({plan.Cwd})", SYS_chdir, scratch.PutString(plan.Cwd));
        syscalls.Call("umask", SYS_umask, plan.Task.Umask);
        syscalls.Call("personality", SYS_personality, plan.Task.Personality);
        SignalRecord signal = plan.Signal;
        for (int resource = 0; resource < SignalRecord.RlimitCapacity; resource++)
        {
            scratch.Reset();
            ulong limit = scratch.PutStruct(new Rlimit { Current = signal.RlimitCurrent[resource], Maximum = signal.RlimitMaximum[resource] });
            syscalls.Call($"prlimit64(RLIMIT_{LimitNames[resource]})", SYS_prlimit64, 0, (ulong)resource, limit, 0);
        }
        scratch.Reset();
        TaskRecord task = plan.Task;
        var comm = new byte[16];
        for (int i = 0; i < 15 && task.Comm[i] != 0; i++) comm[i] = task.Comm[i];
        syscalls.Call($"prctl(PR_SET_NAME, {Encoding.UTF8.GetString(comm).TrimEnd('\0')})", SYS_prctl, PR_SET_NAME, scratch.Put(comm));
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Rlimit
    {
        public ulong Current, Maximum;
    }
}
