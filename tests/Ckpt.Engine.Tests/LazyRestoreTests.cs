using System.Text.RegularExpressions;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Lazy restore (`ckpt restore --lazy`, <see cref="RestoreOptions.Lazy"/>): the process runs before
/// its private anonymous memory is in, a page server fills it. Every workload comes back as an eager
/// restore brings it back once the server is done; threads and system calls touching missing pages
/// read the saved bytes; a dead page server leaves the process blocked, never running on zero pages;
/// a checkpoint meanwhile is refused.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed partial class LazyRestoreTests
{
    private const int SIGKILL = 9;

    [Theory]
    [MemberData(nameof(RestoreEveryWorkloadTests.Workloads), MemberType = typeof(RestoreEveryWorkloadTests))]
    public void Workload_restored_lazily_comes_back_whole_and_passes(string workload, string[] arguments, bool waitsInPause)
    {
        using var target = Start(workload, arguments.Select(a => a == "file" ? TempPath(workload + ".file") : a).ToArray());
        int pid = target.Pid;
        string image = TempPath(workload + ".img");
        string[] maps, descriptors, vmFlags;
        int threads;
        try
        {
            if (waitsInPause) RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            maps = RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps"));
            descriptors = RestoreEveryWorkloadTests.Descriptors(pid);
            vmFlags = RestoreEveryWorkloadTests.RestorableVmFlags(pid);
            threads = Directory.GetDirectories($"/proc/{pid}/task").Length;
            RestoreTestCheckpoint.Checkpoint(pid, image, kill: true);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }

        RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
        try
        {
            Assert.Equal(pid, result.Pid);
            Assert.NotNull(result.PageServer);
            result.PageServer!.StartFilling(); // as `ckpt restore --lazy` does once its caller has the pid
            WaitUntilDone(result.PageServer);
            Assert.Equal(0, result.PageServer.RemainingPages);
            // Once the server is done nothing of it is left: no userfaultfd, no registered range, no thread.
            Assert.Equal(maps, RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps")));
            Assert.Equal(descriptors, RestoreEveryWorkloadTests.Descriptors(pid));
            Assert.Equal(vmFlags, RestoreEveryWorkloadTests.RestorableVmFlags(pid));
            Assert.DoesNotContain(ProcOracle.Smaps(pid), m => m.VmFlags.Contains("um"));
            Assert.Equal(threads, Directory.GetDirectories($"/proc/{pid}/task").Length);
            Assert.Equal("0", TracerOf(pid));
            if (waitsInPause) RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            target.RequirePass();
        }
        finally
        {
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void Threads_and_system_calls_touching_missing_pages_read_the_saved_bytes()
    {
        using var target = Start("ckpt_lazy", "256");
        int pid = target.Pid;
        string image = TempPath("lazy.img");
        int threads = Directory.GetDirectories($"/proc/{pid}/task").Length;
        CheckpointAndKill(pid, image);

        RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
        try
        {
            long missing = result.PageServer!.RemainingPages;
            target.RequirePass(); // futex, write(), read() and four threads in random order, while pages are missing
            Assert.True(missing > 0, "every page was in before the check: the test proved nothing");
            result.PageServer.StartFilling();
            WaitUntilDone(result.PageServer);
            Assert.DoesNotContain(RestoreEveryWorkloadTests.Descriptors(pid), d => d.Contains("userfaultfd"));
        }
        finally
        {
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
        Assert.Equal(4, threads);
    }

    [Fact]
    public void Cli_returns_at_once_and_the_page_server_exits_when_every_page_is_in()
    {
        using var target = Start("ckpt_lazy", "64");
        int pid = target.Pid;
        string image = TempPath("lazy-cli.img");
        CheckpointAndKill(pid, image);

        var restore = RunCli(["restore", "--input", image, "--lazy", "--progress-fd", "1"]);
        try
        {
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            Assert.Contains($"\n{pid}\n", "\n" + restore.Stdout);
            int server = PageServerOf(restore.Stdout);
            for (int i = 0; i < 600 && RestoreTestProcesses.StartTimeOf(server) is not null; i++) Thread.Sleep(100);
            Assert.Null(RestoreTestProcesses.StartTimeOf(server));
            Assert.DoesNotContain(RestoreEveryWorkloadTests.Descriptors(pid), d => d.Contains("userfaultfd"));
            target.RequirePass();
        }
        finally
        {
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
    }

    /// <summary>
    /// The process keeps its userfaultfd until every page is in: with the page server killed, a
    /// thread touching a missing page waits (in handle_userfault) instead of reading zeros. It never
    /// prints FAIL (nor PASS); SIGKILL still ends it.
    /// </summary>
    [Fact]
    public void Killing_the_page_server_never_lets_the_process_run_on_with_zeroed_memory()
    {
        using var target = Start("ckpt_lazy", "256");
        int pid = target.Pid;
        string image = TempPath("lazy-kill.img");
        CheckpointAndKill(pid, image);

        var restore = RunCli(["restore", "--input", image, "--lazy", "--progress-fd", "1"]);
        try
        {
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            RestoreTestProcesses.Signal(PageServerOf(restore.Stdout), SIGKILL);
            Assert.Contains(RestoreEveryWorkloadTests.Descriptors(pid), d => d.Contains("userfaultfd")); // killed before it was done
            RestoreTestProcesses.Signal(pid, SIGUSR1);
            Thread.Sleep(1500);
            Assert.Equal([$"READY {pid}"], File.ReadAllLines(target.Log));
            Assert.Equal("handle_userfault", File.ReadAllText($"/proc/{pid}/wchan"));
        }
        finally
        {
            RestoreTestProcesses.Signal(pid, SIGKILL);
            RestoreTestProcesses.WaitUntilGone(pid);
        }
    }

    [Fact]
    public void A_checkpoint_during_a_lazy_restore_is_refused_naming_the_userfaultfd()
    {
        using var target = Start("ckpt_lazy", "256");
        int pid = target.Pid;
        string image = TempPath("lazy-again.img");
        CheckpointAndKill(pid, image);

        RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
        try
        {
            var checkpoint = RunCli(["checkpoint", "--pid", pid.ToString(), "--output", TempPath("again.img")]);
            Assert.True(result.PageServer!.RemainingPages > 0 || !result.PageServer.Completion.IsCompleted, "the page server was done before the checkpoint: the test proved nothing");
            Assert.Equal(6, checkpoint.ExitCode);
            Assert.Contains("userfaultfd", checkpoint.Stderr);
            Assert.Contains("lazy restore", checkpoint.Stderr);
            result.PageServer.StartFilling();
            WaitUntilDone(result.PageServer);
            target.RequirePass(); // the refused checkpoint left the process as it was
        }
        finally
        {
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
    }

    /// <summary>
    /// A lazy restore does not read the page addresses of private anonymous memory before the release
    /// (the page server reads them when it first needs them): a damaged address then kills the running
    /// process before any page of that mapping is served, and the failure names the PAGE_ARRAY record
    /// and its offset. The process never runs on with a wrong or zero page.
    /// </summary>
    [Fact]
    public void A_damaged_page_address_read_after_the_release_kills_the_process_naming_the_record()
    {
        using var target = Start("ckpt_lazy", "64");
        int pid = target.Pid;
        string image = TempPath("lazy-damaged-address.img");
        CheckpointAndKill(pid, image);
        Ckpt.Image.Model.DeferredPageChunk chunk = LargestDeferredMapping(image).DeferredChunks[^1];
        using (var file = new FileStream(image, FileMode.Open, FileAccess.Write))
        {
            file.Position = chunk.AddressesOffset;
            file.Write(BitConverter.GetBytes(0x1001ul)); // its first address: not a page, outside the mapping
        }

        Exception? failure;
        try
        {
            // Nothing before the release reads it; the workers' futex word is in that mapping, so the first
            // fault may come while the release restarts their futex wait (the restore then fails with the
            // damage) or just after it (the page server then fails with it).
            RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
            Assert.Equal(pid, result.Pid);
            result.PageServer!.StartFilling();
            for (int i = 0; i < 600 && !result.PageServer.Completion.IsCompleted; i++) Thread.Sleep(100);
            failure = result.PageServer.Completion.Exception?.InnerException;
        }
        catch (Ckpt.Image.ImageFormatException e)
        {
            failure = e;
        }
        try
        {
            var error = Assert.IsType<Ckpt.Image.ImageFormatException>(failure);
            Assert.Equal(Ckpt.Image.Records.RecordType.PageArray, error.Record);
            Assert.Equal(chunk.RecordOffset, error.Offset);
            Assert.Contains("0x1001", error.Message);
            RestoreTestProcesses.WaitUntilGone(pid);
            Assert.Equal([$"READY {pid}"], File.ReadAllLines(target.Log)); // killed before it could check (or print) anything
        }
        finally
        {
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
    }

    private static Ckpt.Image.Model.VmaImage LargestDeferredMapping(string image)
    {
        using var stream = File.OpenRead(image);
        var model = Ckpt.Image.Model.ImageModelReader.Read(new Ckpt.Image.ImageReader(stream, verifyChecksum: false) { DeferAnonymousPageAddresses = true });
        return model.Processes[0].Memory.Vmas.MaxBy(v => v.DeferredChunks.Sum(c => c.PageCount))!;
    }

    private static void CheckpointAndKill(int pid, string image)
    {
        try { RestoreTestCheckpoint.Checkpoint(pid, image, kill: true); }
        finally { RestoreTestProcesses.KillAndReap(pid); }
    }

    private static void WaitUntilDone(Ckpt.Engine.Memory.LazyPageServer server)
    {
        for (int i = 0; i < 600 && !server.Completion.IsCompleted; i++) Thread.Sleep(100);
        Assert.True(server.Completion.IsCompleted, "the page server did not finish in 60 s");
        if (server.Completion.Exception is { } failure) throw failure;
    }

    private static int PageServerOf(string progress) => int.Parse(PageServerPid().Match(progress).Groups[1].Value);

    private static string TracerOf(int pid) =>
        File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("TracerPid:", StringComparison.Ordinal))["TracerPid:".Length..].Trim();

    [GeneratedRegex("\"page_server_pid\":([0-9]+)")]
    private static partial Regex PageServerPid();
}
