using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Processes sharing memory, and signal handlers, without being threads (issue 10), with
/// tests/workloads/ckpt_shared_vm.c: a pair made by clone(CLONE_VM), clone(CLONE_VM | CLONE_SIGHAND), or a
/// sibling pair (CLONE_VM | CLONE_SIGHAND | CLONE_PARENT). The image holds the address space and handlers once
/// (the second process's TASK_OBJECTS refer to the first's); restored, kcmp says the same pairs share memory and
/// handlers as before, and the workload checks a write by one is seen by the other and a handler installed by
/// one is run by the other (or, with CLONE_VM only, is not). A vfork, and a sharer checkpointed without the
/// process it shares with, are refused by name and left running untouched.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SharedVmTests
{
    private const int SIGKILL = 9;

    private static (int First, int Second) SharersOf(Target target)
    {
        string[] fields = File.ReadAllLines(target.Log).Single(l => l.StartsWith("SHARERS ", StringComparison.Ordinal)).Split(' ');
        return (int.Parse(fields[1]), int.Parse(fields[2]));
    }

    private static bool Same(int a, int b, int kcmpType)
    {
        int order = Native.kcmp(a, b, kcmpType, 0, 0);
        Assert.True(order >= 0, $"kcmp({a}, {b}, {kcmpType}) failed: errno {Native.LastErrno}");
        return order == 0;
    }

    private static void AssertSharing(int first, int second, bool handlers, bool tables = false)
    {
        Assert.True(Same(first, second, Native.KCMP_VM), $"processes {first} and {second} do not share memory");
        Assert.Equal(handlers, Same(first, second, Native.KCMP_SIGHAND));
        Assert.Equal(tables, Same(first, second, Native.KCMP_FILES)); // each its own descriptor table, as before, unless "all"
        Assert.Equal(tables, Same(first, second, Native.KCMP_FS));
    }

    [Theory]
    [InlineData("vm", false)]
    [InlineData("vm-sighand", true)]
    [InlineData("sibling", true)]
    [InlineData("all", true)]
    public void Processes_sharing_memory_come_back_sharing_it_and_their_handlers(string mode, bool handlers)
    {
        bool tables = mode == "all";
        using var target = Start("ckpt_shared_vm", mode);
        var (first, second) = SharersOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            AssertSharing(first, second, handlers, tables);
            string image = TempPath($"shared-vm-{mode}.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            ImageModel model = ReadImage(image).Image!;
            ProcessImage firstImage = model.Processes.Single(p => p.Pid == first), secondImage = model.Processes.Single(p => p.Pid == second);
            Assert.Same(firstImage.Memory, secondImage.Memory); // one MM object, its pages once
            Assert.Equal(handlers, ReferenceEquals(firstImage.SignalHandlers, secondImage.SignalHandlers));

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            AssertSharing(first, second, handlers, tables);
            target.RequirePass(seconds: 30);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_sharers_running_and_sharing()
    {
        using var target = Start("ckpt_shared_vm", "vm-sighand");
        var (first, second) = SharersOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            CkptCheckpoint(target.Pid, TempPath("shared-vm-live.img"), kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            AssertSharing(first, second, handlers: true);
            target.RequirePass(seconds: 30);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_sharer_checkpointed_without_the_process_it_shares_with_is_refused_naming_it()
    {
        using var target = Start("ckpt_shared_vm", "vm");
        var (first, second) = SharersOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", second.ToString(), "--output", TempPath("shared-vm-half.img"));
            Assert.Equal(6, code);
            Assert.Contains($"process {first} shares the memory of process {second}", stderr);
            Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{second}/status"));
            target.RequirePass(seconds: 30);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_vfork_is_refused_by_name_before_the_freeze()
    {
        using var target = Start("ckpt_shared_vm", "vfork");
        var (parent, child) = SharersOf(target);
        try
        {
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", parent.ToString(), "--output", TempPath("vfork.img"));
            Assert.Equal(6, code);
            Assert.Contains($"of process {parent} waits in a vfork for process {child}", stderr);
            foreach (int pid in new[] { parent, child })
            {
                string status = File.ReadAllText($"/proc/{pid}/status");
                Assert.Contains("TracerPid:\t0", status);
                Assert.DoesNotContain("(stopped)", status);
            }
        }
        finally
        {
            RestoreTestProcesses.TryKill(child, SIGKILL);
        }
    }
}
