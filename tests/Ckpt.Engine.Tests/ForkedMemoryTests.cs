using System.Globalization;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Private memory a child still shares copy-on-write with its parent after fork (issue 10):
/// tests/workloads/ckpt_forked_memory.c (256 MiB written by the root before it forks; the child
/// rewrites 1 MiB of it). The shared pages are stored once, with the parent (INHERITED_PAGES in the
/// child), and after a restore each process holds exactly what it had. The engine runs as the real `ckpt`.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class ForkedMemoryTests
{
    private const int SIGKILL = 9, SIGUSR1 = 10;
    private const int RegionPages = 256 * 256, ChildPages = 256;
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(4);

    private static List<int> Pids(List<string> tree) => tree.Select(l => int.Parse(l.Split(' ')[0])).ToList();

    private static ulong Region(Target target)
    {
        string line = File.ReadAllLines(target.Log).First(l => l.StartsWith("REGION ", StringComparison.Ordinal));
        return ulong.Parse(line.Split(' ')[1].AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    private static VmaImage VmaAt(ProcessImage process, ulong address) =>
        process.Memory.Vmas.Single(v => v.Record.VmStart <= address && address < v.Record.VmEnd);

    [Fact]
    public void A_forked_256_MiB_process_stores_the_pages_it_shares_with_its_parent_once_and_both_pass_after_kill_and_restore()
    {
        using var target = StartProgram(RestoreWorkloads.Path("ckpt_forked_memory"), readySeconds: 60);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            ulong region = Region(target);
            int child = Pids(before).Single(p => p != target.Pid);
            string image = TempPath("forked.img");
            CkptCheckpoint(target.Pid, image, kill: true, timeout: Slow);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in Pids(before)) RestoreTestProcesses.WaitUntilGone(pid);

            ImageModel model = ReadImage(image).Image!;
            VmaImage parentVma = VmaAt(model.Processes.Single(p => p.Pid == target.Pid), region);
            VmaImage childVma = VmaAt(model.Processes.Single(p => p.Pid == child), region);
            Assert.Equal((ulong)RegionPages, parentVma.PagesSaved);
            Assert.Equal(ChildPages, (int)childVma.PagesSaved); // only the pages it rewrote
            Assert.Equal(RegionPages - ChildPages, childVma.InheritedPages.Count);
            var (showCode, show, _) = RunCkpt(EngineTimeout, "show", image);
            Assert.Equal(0, showCode);
            Assert.Contains($"{ChildPages,8} pages (+{RegionPages - ChildPages} pages as the parent's)", show);
            long bytes = new FileInfo(image).Length;
            Assert.True(bytes < 300L << 20, $"the image is {bytes >> 20} MiB: the shared pages were stored twice (511 MiB before deduplication)");

            Assert.Equal(target.Pid, CkptRestore(image, Slow));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
            target.RequirePass(seconds: 120); // every word of the 256 MiB in both processes
        }
        finally
        {
            foreach (int pid in Pids(before)) RestoreTestProcesses.TryKill(pid, SIGKILL);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_forked_pages_shared_and_both_processes_pass()
    {
        using var target = StartProgram(RestoreWorkloads.Path("ckpt_forked_memory"), readySeconds: 60);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            ulong region = Region(target);
            int child = Pids(before).Single(p => p != target.Pid);
            ulong shared = region + 4096UL * 10, own = region + 4096UL * 1000;
            Assert.Equal(Frame(target.Pid, shared), Frame(child, shared));
            CkptCheckpoint(target.Pid, TempPath("forked-live.img"), kill: false, timeout: Slow);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.Equal(Frame(target.Pid, shared), Frame(child, shared)); // still one page: nothing was copied
            Assert.NotEqual(Frame(target.Pid, own), Frame(child, own));
            foreach (int pid in Pids(before)) Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{pid}/status"));
            RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
            target.RequirePass(seconds: 120);
        }
        finally
        {
            foreach (int pid in Pids(before)) RestoreTestProcesses.TryKill(pid, SIGKILL);
        }
    }

    /// <summary>The page frame number at an address (/proc/PID/pagemap bits 0-54; the tests run as root).</summary>
    private static ulong Frame(int pid, ulong address)
    {
        using var pagemap = File.OpenRead($"/proc/{pid}/pagemap");
        byte[] entry = new byte[8];
        pagemap.Position = (long)(address / 4096 * 8);
        pagemap.ReadExactly(entry);
        ulong value = BitConverter.ToUInt64(entry);
        Assert.True((value >> 63) == 1, $"page 0x{address:x} of process {pid} is not present");
        return value & ((1UL << 55) - 1);
    }
}
