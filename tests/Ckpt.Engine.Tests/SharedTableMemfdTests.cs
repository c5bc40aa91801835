namespace Ckpt.Engine.Tests;

/// <summary>
/// A process sharing a descriptor table (CLONE_FILES) that maps a memfd the table holds (issue 10), with
/// tests/workloads/ckpt_shared_table_memfd.c: the root R holds the memfd at fd 40, its CLONE_FILES child C maps
/// it shared. Restored, it is one file again: R's write through fd 40 is seen in C's mapping and C's write
/// through the mapping is read back through fd 40.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SharedTableMemfdTests
{
    private const int SIGKILL = 9;

    [Fact]
    public void A_memfd_of_a_shared_table_mapped_by_a_sharer_comes_back_as_one_file()
    {
        using var target = Start("ckpt_shared_table_memfd");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            Assert.Equal(2, before.Count);
            string image = TempPath("shared-table-memfd.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            target.RequirePass(seconds: 30);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_memfd_of_a_shared_table_mapped_by_two_processes_is_refused_by_name_and_left_running()
    {
        using var target = Start("ckpt_shared_table_memfd", "both-map");
        int child = int.Parse(File.ReadAllLines(target.Log).Single(l => l.StartsWith("SHARER ", StringComparison.Ordinal)).Split(' ')[1]);
        try
        {
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("shared-table-memfd-both.img"));
            Assert.Equal(6, code);
            Assert.Contains($"process {child} maps at", stderr);
            Assert.Contains($"/memfd:shared-table (deleted) that fd 40 of process {target.Pid} holds too: unlinked files shared between processes are not checkpointed yet", stderr);
            target.RequirePass(seconds: 30);
        }
        finally
        {
            RestoreTestProcesses.TryKill(child, SIGKILL);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_memfd_shared()
    {
        using var target = Start("ckpt_shared_table_memfd");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            CkptCheckpoint(target.Pid, TempPath("shared-table-memfd-live.img"), kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            target.RequirePass(seconds: 30);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }
}
