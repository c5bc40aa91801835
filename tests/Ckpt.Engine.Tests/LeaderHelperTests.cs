namespace Ckpt.Engine.Tests;

/// <summary>
/// A session and process group whose leader is gone (issue 10), with tests/workloads/ckpt_daemon.c: a daemon
/// made by fork, setsid, fork (the session leader exited and was reaped) with a child in its session and
/// group. Checkpointed and restored, both are back in a session and group with the dead leader's id, made
/// by a helper process that is gone again afterwards; a checkpoint without --kill leaves them as they were.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class LeaderHelperTests
{
    private const int SIGKILL = 9;

    private static (int Daemon, int Session) DaemonOf(Target target)
    {
        string[] fields = File.ReadAllLines(target.Log).Single(l => l.StartsWith("DAEMON ", StringComparison.Ordinal)).Split(' ');
        return (int.Parse(fields[1]), int.Parse(fields[2]));
    }

    private static void PassAfterSignal(Target target, int daemon)
    {
        RestoreTestProcesses.Signal(daemon, SIGUSR1);
        RestoreTestProcesses.WaitForLine(target.Log, "PASS", 10);
        Assert.DoesNotContain("FAIL", File.ReadAllText(target.Log));
    }

    [Fact]
    public void A_double_forked_daemon_comes_back_in_its_session_and_group_whose_leader_is_gone()
    {
        using var target = Start("ckpt_daemon");
        var (daemon, session) = DaemonOf(target);
        List<string> before = ProcessTreeTests.Tree(daemon);
        try
        {
            Assert.Equal(2, before.Count);
            Assert.All(before, l => Assert.EndsWith($"pgid {session} sid {session} live", l));
            Assert.False(Directory.Exists($"/proc/{session}"));
            string image = TempPath("daemon.img");
            CkptCheckpoint(daemon, image, kill: true);
            ImageModel model = ReadImage(image).Image!;
            Assert.All(model.TaskTable, t => Assert.Equal((session, session), (t.Sid, t.Pgid)));
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            Assert.Equal(daemon, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(daemon));
            RestoreTestProcesses.WaitUntilGone(session); // the helper exited and was reaped: nothing extra remains
            PassAfterSignal(target, daemon);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_daemon_as_it_was()
    {
        using var target = Start("ckpt_daemon");
        var (daemon, session) = DaemonOf(target);
        List<string> before = ProcessTreeTests.Tree(daemon);
        try
        {
            CkptCheckpoint(daemon, TempPath("daemon-live.img"), kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(daemon));
            Assert.False(Directory.Exists($"/proc/{session}"));
            PassAfterSignal(target, daemon);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }
}
