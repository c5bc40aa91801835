namespace Ckpt.Engine.Tests;

/// <summary>
/// Shared anonymous memory between processes of a tree (issue 10): tests/workloads/ckpt_shared_tree.c
/// (MAP_SHARED|MAP_ANONYMOUS and /dev/zero MAP_SHARED mapped before a fork, the child's view starting
/// 16 pages into the object, pages written by each side). The image holds each object once with each
/// page once; after a restore both processes map the same object again: each sees the other's writes.
/// The engine runs as the real `ckpt`.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SharedMemoryTreeTests
{
    private const int SIGKILL = 9, SIGUSR1 = 10;

    private static List<int> Pids(List<string> tree) => tree.Select(l => int.Parse(l.Split(' ')[0])).ToList();

    private static void KillAll(IEnumerable<int> pids)
    {
        foreach (int pid in pids) RestoreTestProcesses.TryKill(pid, SIGKILL);
    }

    [Fact]
    public void Shared_anonymous_memory_of_a_parent_and_child_is_one_object_stored_once_and_shared_again_after_kill_and_restore()
    {
        using var target = Start("ckpt_shared_tree");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            Assert.Equal(2, before.Count);
            string image = TempPath("shared-tree.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in Pids(before)) RestoreTestProcesses.WaitUntilGone(pid);

            ImageModel model = ReadImage(image).Image!;
            var shared = model.Processes.SelectMany(p => p.Memory.Vmas.Where(v => v.Record.VmaType == VmaType.SharedAnon).Select(v => (p.Pid, Vma: v))).ToList();
            var objects = shared.GroupBy(s => s.Vma.SharedMemory!.ObjRef).ToList();
            Assert.Equal(2, objects.Count); // A and B, each one object for both processes
            foreach (var obj in objects)
            {
                Assert.Equal(2, obj.Select(s => s.Pid).Distinct().Count());
                Assert.Single(obj.Select(s => s.Vma.SharedMemory).Distinct()); // the same instance: defined once
            }
            var a = objects.Single(o => o.First().Vma.SharedMemory!.Record.SizePages == 64);
            var b = objects.Single(o => o.First().Vma.SharedMemory!.Record.SizePages == 8);
            // A: pages 0..47 written and the flag in page 60; B: page 0. Each stored once, whichever process wrote it.
            Assert.Equal(49ul, (ulong)a.Sum(s => (long)s.Vma.PagesSaved));
            Assert.Equal(1ul, (ulong)b.Sum(s => (long)s.Vma.PagesSaved));
            Assert.Contains(a, s => s.Pid != target.Pid && s.Vma.Record.VmPgoff == 16); // the child's view, 16 pages in
            var (showCode, show, _) = RunCkpt(EngineTimeout, "show", image);
            Assert.Equal(0, showCode);
            Assert.Equal(2, show.Split('\n').Count(l => l.Contains("SharedAnon") && l.EndsWith($"pages (shared memory {a.Key}: 64 pages)", StringComparison.Ordinal)));

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            int child = Pids(before).Single(p => p != target.Pid);
            Assert.Equal(SharedInodes(target.Pid), SharedInodes(child)); // the same objects in both
            RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
            target.RequirePass(seconds: 60); // each sees the other's writes, before and after the restore
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_sharing_processes_untouched_and_they_pass()
    {
        using var target = Start("ckpt_shared_tree");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            int child = Pids(before).Single(p => p != target.Pid);
            string[] rootMaps = File.ReadAllLines($"/proc/{target.Pid}/maps"), childMaps = File.ReadAllLines($"/proc/{child}/maps");
            CkptCheckpoint(target.Pid, TempPath("shared-tree-live.img"), kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.Equal(rootMaps, File.ReadAllLines($"/proc/{target.Pid}/maps"));
            Assert.Equal(childMaps, File.ReadAllLines($"/proc/{child}/maps"));
            foreach (int pid in Pids(before)) Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{pid}/status"));
            RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
            target.RequirePass(seconds: 60);
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_process_sharing_anonymous_memory_with_one_outside_the_checkpointed_tree_is_refused_naming_both_and_all_run_on()
    {
        using var target = Start("ckpt_shared_tree");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            int child = Pids(before).Single(p => p != target.Pid);
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", child.ToString(), "--output", TempPath("shared-outside.img"));
            Assert.Equal(6, code);
            Assert.Contains($"process {child} maps shared anonymous memory", stderr);
            Assert.Contains($"that process {target.Pid}, outside the checkpointed tree, maps too", stderr);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{child}/status"));
            RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
            target.RequirePass(seconds: 60);
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    /// <summary>The inodes of a process's shared anonymous mappings ("/dev/zero (deleted)"), in address order.</summary>
    private static List<string> SharedInodes(int pid) =>
        File.ReadAllLines($"/proc/{pid}/maps").Where(l => l.EndsWith("/dev/zero (deleted)", StringComparison.Ordinal))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[4]).Distinct().Order().ToList();
}
