using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// "Nothing lost silently" (Checkpoint/Audit, docs/KERNEL-STATE.md): a
/// target holding kernel state the image cannot describe is refused with a message naming the item and
/// the pid, and is untouched afterwards: same mappings and signal state, not stopped, not traced, and it
/// passes its own check of its memory and object (ckpt_refusals). State visible in /proc is refused
/// before the freeze (no "freeze" progress); state only the task can report is probed by read-only
/// injection while frozen.
/// </summary>
[Collection("checkpoint")]
public class KernelStateAuditTests
{
    [Theory]
    [InlineData("io_uring", "io_uring instance")]
    [InlineData("aio", "aio ring (io_setup)")]
    [InlineData("userfaultfd", "userfaultfd-registered range")]
    [InlineData("pidfd", "is a pidfd")]
    [InlineData("fanotify", "is a fanotify group")]
    [InlineData("perf", "is a perf event")]
    [InlineData("bpf-map", "bpf object (bpf-map)")]
    [InlineData("shm", "SysV shared memory segment")]
    [InlineData("sem-undo", "SysV semaphore undo list")]
    [InlineData("mqueue", "POSIX message queue")]
    [InlineData("nsfd", "namespace file")]
    [InlineData("seccomp-strict", "seccomp (mode 1, strict)")]
    [InlineData("unshare-uts", "another uts namespace")]
    [InlineData("mlock", "locked memory (mlock or mlockall)")]
    [InlineData("thp-disable", "PR_SET_THP_DISABLE")]
    [InlineData("ksm", "PR_SET_MEMORY_MERGE")]
    [InlineData("affinity", "its own CPU affinity")]
    [InlineData("ioprio", "its own I/O priority")]
    [InlineData("sched-reset", "SCHED_RESET_ON_FORK")]
    [InlineData("mempolicy", "memory policy 'bind")]
    [InlineData("oom", "oom_score_adj 100")]
    [InlineData("coredump", "coredump_filter")]
    [InlineData("memfd-reopen", "are two open files of one memfd (/memfd:ckpt-reopened (deleted))")]
    public void Visible_state_is_refused_by_name_before_the_freeze(string mode, string item)
    {
        using var target = Start("ckpt_refusals", mode);
        RefusedAndUntouched(target, item, frozen: false);
    }

    [Theory]
    [InlineData("mdwe", "memory-deny-write-execute")]
    [InlineData("tsc", "time-stamp counter")]
    [InlineData("timerslack", "its own timer slack (1000 ns")]
    [InlineData("keyring", "thread keyring")]
    public void State_only_the_task_reports_is_refused_by_name_and_the_probes_change_nothing(string mode, string item)
    {
        using var target = Start("ckpt_refusals", mode);
        RefusedAndUntouched(target, item, frozen: true);
    }

    // Mappings are inspected while frozen: a mapped deleted name whose file has another link has no contents of its own to save.
    [Fact]
    public void A_mapped_deleted_name_of_a_file_with_another_link_is_refused_by_name_and_changes_nothing()
    {
        using var target = Start("ckpt_refusals", "deleted-linked");
        RefusedAndUntouched(target, "a deleted name of a file that still has 1 other links", frozen: true);
    }

    [Fact]
    public void A_traced_target_is_refused_naming_its_tracer()
    {
        using var target = Start("ckpt_refusals", "plain");
        using var tracer = Start("ckpt_refusals", "tracer", target.Pid.ToString());
        RefusedAndUntouched(target, $"is traced by process {tracer.Pid}", frozen: false, tracedBy: tracer.Pid);
        tracer.RequirePass();
        RestoreTestProcesses.WaitForExit(tracer.Pid); // the target is untraced once its tracer is gone
        target.RequirePass();
    }

    [Fact]
    public void A_target_tracing_another_process_is_refused_naming_it()
    {
        using var traced = Start("ckpt_refusals", "plain");
        using var target = Start("ckpt_refusals", "tracer", traced.Pid.ToString());
        RefusedAndUntouched(target, $"traces thread {traced.Pid} of process {traced.Pid}", frozen: false);
        traced.RequirePass();
    }

    // Issue 13: a process outside the checkpoint sharing the memory could rewrite the injected code.
    [Fact]
    public void A_process_sharing_the_memory_is_refused_naming_it()
    {
        using var target = Start("ckpt_refusals", "clone-vm");
        int sharer = int.Parse(File.ReadAllLines(target.Log).First(l => l.StartsWith("SHARER ")).Split(' ')[1]);
        try
        {
            RefusedAndUntouched(target, $"process {sharer} shares the memory of process {target.Pid}", frozen: false);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(sharer);
        }
    }

    [Fact]
    public void The_engine_exits_6_naming_the_item()
    {
        using var target = Start("ckpt_refusals", "io_uring");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("io_uring.img")]);
        Assert.True(code == 6, $"exit {code}: {stderr}");
        Assert.StartsWith("ckpt: ", stderr);
        Assert.Contains("io_uring", stderr);
        Assert.Contains(target.Pid.ToString(), stderr);
        target.RequirePass();
    }

    private static void RefusedAndUntouched(Target target, string item, bool frozen, int tracedBy = 0)
    {
        string maps = File.ReadAllText($"/proc/{target.Pid}/maps");
        string[] signals = SignalState(target.Pid);
        var phases = new List<string>();
        var error = Assert.Throws<CheckpointRefusedException>(() =>
        {
            using var output = new MemoryStream();
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, Kill: false), (phase, _, _) => phases.Add(phase));
        });
        Assert.True(error.Message.Contains(item), error.Message);
        Assert.Contains(target.Pid.ToString(), error.Message);
        Assert.Equal(frozen, phases.Contains("freeze"));

        Assert.Equal(maps, File.ReadAllText($"/proc/{target.Pid}/maps"));
        Assert.Equal(signals, SignalState(target.Pid));
        var status = File.ReadAllLines($"/proc/{target.Pid}/status");
        Assert.Equal($"TracerPid:\t{tracedBy}", status.First(l => l.StartsWith("TracerPid:")));
        Assert.DoesNotMatch("State:\t[tT]", status.First(l => l.StartsWith("State:")));
        if (tracedBy == 0) target.RequirePass();
    }

    // Pending, blocked, ignored and caught signals (SigQ counts the whole user's queued signals).
    private static string[] SignalState(int pid) =>
        File.ReadAllLines($"/proc/{pid}/status").Where(l => l.StartsWith("Sig") && !l.StartsWith("SigQ") || l.StartsWith("ShdPnd")).ToArray();
}
