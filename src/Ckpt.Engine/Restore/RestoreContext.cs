using Ckpt.Engine.Linux;
using Ckpt.Image.Model;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Restore;

/// <summary>One restored thread: its image and the injector that runs system calls in it.</summary>
public sealed record RestoredThread(ThreadImage Image, SyscallInjector Syscalls)
{
    public int Tid => Image.Tid;
}

/// <summary>
/// linux-cr's ckpt_ctx on the restore side: the plan, every task made so far (to kill them all on
/// a failure), the threads with their injectors, the scratch area, and the step being done (named
/// in a failure). Stages run one after the other; a per-thread stage runs for every thread before
/// the next stage starts, so all threads pass each barrier together.
/// </summary>
public sealed class RestoreContext(RestorePlan plan, Action<string>? phase)
{
    private readonly List<Tracee> _created = [];
    private readonly List<RestoredThread> _threads = [];

    public RestorePlan Plan { get; } = plan;

    /// <summary>The threads, the leader first (only the leader until the threads stage).</summary>
    public IReadOnlyList<RestoredThread> Threads => _threads;

    public SyscallInjector Leader => _threads[0].Syscalls;

    public ScratchArea Scratch { get; set; } = null!;

    /// <summary>What was being done when a failure happened.</summary>
    public string Step { get; private set; } = "create";

    /// <summary>A task exists (created by the engine, or by an injected clone): kill it on failure.</summary>
    public void Created(Tracee tracee) => _created.Add(tracee);

    public void AddThread(RestoredThread thread) => _threads.Add(thread);

    /// <summary>A step done once for the process; reported as a progress phase when <paramref name="reported"/>.</summary>
    public void Stage(string name, Action action, bool reported = false)
    {
        Step = name;
        if (reported) phase?.Invoke(name);
        action();
    }

    /// <summary>A step done for every thread, the leader first, before anything after it.</summary>
    public void EachThread(string name, Action<RestoredThread> action, bool reported = false)
    {
        if (reported) phase?.Invoke(name);
        foreach (RestoredThread thread in _threads)
        {
            Step = $"thread {thread.Tid}: {name}";
            action(thread);
        }
    }

    /// <summary>
    /// SIGKILL ends the whole thread group. As tracer we are told of each death: threads first, the
    /// leader's is reported after them; its parent (init, or us as subreaper) reaps it.
    /// </summary>
    public void KillAll()
    {
        if (_created.Count == 0) return;
        kill(_created[0].Pid, SIGKILL);
        foreach (Tracee tracee in _created.Skip(1).Append(_created[0]))
        {
            try { ProcessCreation.WaitForStop(tracee.Pid); }
            catch (SyscallException) { }
        }
    }
}
