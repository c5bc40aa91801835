using Ckpt.Engine.Tasks;

namespace Ckpt.Engine.Tests;

/// <summary>
/// <see cref="SharedTables.Plan"/> for address spaces and signal handlers (issue 10): which process forks each
/// sharer and with which clone flags, and the sharing no clone can make refused by name (at checkpoint and
/// restore both: the same plan). Members: (pid, ppid, sid, file table, fs, vm, sighand) keys, equal = shared.
/// </summary>
public sealed class SharingPlanTests
{
    private static TreeMember Member(int pid, int ppid, long vm, long sighand) => new(pid, ppid, 1, pid, pid, vm, sighand);

    [Fact]
    public void A_child_sharing_its_parents_memory_and_handlers_is_forked_by_the_parent_and_not_exec_ed()
    {
        var steps = SharedTables.Plan([Member(10, 1, 10, 10), Member(11, 10, 10, 10), Member(12, 10, 10, 12)]);
        Assert.Equal(new CreationStep(11, 10, false, false, false, SharesVm: true, SharesSighand: true), steps[11]);
        Assert.Equal(new CreationStep(12, 10, false, false, false, SharesVm: true, SharesSighand: false), steps[12]);
        Assert.False(steps[11].Execs);
        Assert.True(steps[10].Execs);
    }

    [Fact]
    public void A_sibling_sharing_an_earlier_siblings_memory_is_forked_by_it_with_clone_parent()
    {
        var steps = SharedTables.Plan([Member(10, 1, 10, 10), Member(11, 10, 11, 11), Member(12, 10, 11, 11)]);
        Assert.Equal(new CreationStep(12, 11, false, false, AsSibling: true, SharesVm: true, SharesSighand: true), steps[12]);
    }

    [Fact]
    public void A_sharer_whose_parent_and_siblings_do_not_share_its_memory_is_refused_naming_both()
    {
        var error = Assert.Throws<SharingNotCreatableException>(() => SharedTables.Plan([Member(10, 1, 10, 10), Member(11, 10, 11, 11), Member(12, 11, 10, 12)]));
        Assert.Contains("process 12 shares its memory (CLONE_VM) with process 10, but neither its parent 11 nor an earlier sibling shares it", error.Message);
    }

    [Fact]
    public void Handlers_shared_without_memory_are_refused()
    {
        var error = Assert.Throws<SharingNotCreatableException>(() => SharedTables.Plan([Member(10, 1, 10, 10), Member(11, 10, 11, 10)]));
        Assert.Contains("process 11 shares its signal handlers with process 10 but not its memory", error.Message);
    }
}
