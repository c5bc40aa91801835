using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>
/// The handover of a lazy restore from the engine that restored the process to the page server
/// process (<see cref="LazyHandover"/>, what `ckpt restore --lazy` does): the pages still missing
/// at the handover are served by the server that took over, from every thread and through system
/// calls; a server whose end is closed (it died before the handover) fails the handover, and nothing
/// is left serving the process.
/// Here both ends are in the test process (the descriptors still travel by SCM_RIGHTS); the CLI
/// tests in <see cref="LazyRestoreTests"/> run it across the two processes.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class LazyHandoverTests
{
    [Fact]
    public void The_server_that_took_over_serves_every_missing_page_and_finishes()
    {
        using var target = Start("ckpt_lazy", "256");
        int pid = target.Pid;
        string image = TempPath("handover.img");
        CheckpointAndKill(pid, image);

        RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
        var (ours, theirs) = LazyHandover.CreateSocketPair();
        try
        {
            long missing = result.PageServer!.RemainingPages;
            LazyPageServer? received = null;
            var receiver = new Thread(() => received = LazyHandover.Receive(theirs)); // the page server process's side
            receiver.Start();
            LazyHandover.Send(ours, result.PageServer);
            receiver.Join();
            LazyPageServer adopted = received!;
            Assert.True(adopted.RemainingPages > 0 && adopted.RemainingPages <= missing, $"{missing} pages missing before the handover, {adopted.RemainingPages} after: the test proves nothing");
            Assert.True(result.PageServer.Completion.IsCompletedSuccessfully, "the restoring engine's server still serves");

            target.RequirePass(); // futex, write(), read() and four threads in random order, served by the adopted server
            adopted.StartFilling();
            for (int i = 0; i < 600 && !adopted.Completion.IsCompleted; i++) Thread.Sleep(100);
            Assert.True(adopted.Completion.IsCompletedSuccessfully, adopted.Completion.Exception?.ToString() ?? "not done in 60 s");
            Assert.Equal(0, adopted.RemainingPages);
            Assert.DoesNotContain(RestoreEveryWorkloadTests.Descriptors(pid), d => d.Contains("userfaultfd"));
            Assert.DoesNotContain(ProcOracle.Smaps(pid), m => m.VmFlags.Contains("um"));
        }
        finally
        {
            Native.close(ours);
            Native.close(theirs);
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void A_server_that_is_gone_fails_the_handover()
    {
        using var target = Start("ckpt_lazy", "64");
        int pid = target.Pid;
        string image = TempPath("handover-none.img");
        CheckpointAndKill(pid, image);

        RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
        var (ours, theirs) = LazyHandover.CreateSocketPair();
        try
        {
            Native.close(theirs); // the page server process died before it took anything
            var failure = Assert.Throws<IOException>(() => LazyHandover.Send(ours, result.PageServer!));
            Assert.Contains("did not take over", failure.Message);
            // The process still holds its userfaultfd: nothing serves it, it must not run on (the CLI kills it).
            Assert.Contains(RestoreEveryWorkloadTests.Descriptors(pid), d => d.Contains("userfaultfd"));
        }
        finally
        {
            Native.close(ours);
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    /// <summary>
    /// `ckpt restore --lazy` returns once its handover is sent, without waiting for the server to read it:
    /// a server that dies before reading it (its socket closed with the message, and the userfaultfds in
    /// it, still queued) leaves the process holding its own userfaultfd, blocked on the first missing page
    /// it touches, never reading zeros where the image had data.
    /// </summary>
    [Fact]
    public void A_server_that_dies_before_reading_the_handover_leaves_the_process_blocked()
    {
        const int SIGUSR1 = 10;
        using var target = Start("ckpt_lazy", "64");
        int pid = target.Pid;
        string image = TempPath("handover-unread.img");
        CheckpointAndKill(pid, image);

        RestoreResult result = Restorer.Restore(new RestoreOptions(image, Lazy: true));
        var (ours, theirs) = LazyHandover.CreateSocketPair();
        try
        {
            Assert.True(result.PageServer!.RemainingPages > 0, "every page was in before the handover: the test proves nothing");
            LazyHandover.Send(ours, result.PageServer); // returns at once: nobody reads
            Native.close(theirs); // the server died with the message unread: its descriptors are dropped
            theirs = -1;
            Assert.Contains(RestoreEveryWorkloadTests.Descriptors(pid), d => d.Contains("userfaultfd"));
            RestoreTestProcesses.Signal(pid, SIGUSR1); // the check touches every page, from four threads
            Thread.Sleep(1500);
            Assert.Equal([$"READY {pid}"], File.ReadAllLines(target.Log)); // neither PASS nor FAIL
            Assert.Equal("handle_userfault", File.ReadAllText($"/proc/{pid}/wchan"));
        }
        finally
        {
            Native.close(ours);
            if (theirs >= 0) Native.close(theirs);
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    private static void CheckpointAndKill(int pid, string image)
    {
        try { RestoreTestCheckpoint.Checkpoint(pid, image, kill: true); }
        finally { RestoreTestProcesses.KillAndReap(pid); }
    }
}
