namespace Ckpt.Engine.Tests;

/// <summary>
/// A session whose leader is gone, below the root (issue 10), with tests/workloads/ckpt_orphan_session.c: the
/// root R is a child subreaper; its child C called setsid(), forked D (which forked F) and exited, so D is R's
/// child in session and group C. Restored, a helper with pid C forked by R makes the session, forks D and
/// exits: D is R's child in session C again, and the helper is gone (reaped by R). When R is no longer a
/// subreaper the helper's orphan would go elsewhere: the restore refuses by name, before creating anything.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SessionHelperTests
{
    private const int SIGKILL = 9;

    private static (int D, int F, int Session) OrphanOf(Target target)
    {
        string[] fields = File.ReadAllLines(target.Log).Single(l => l.StartsWith("ORPHAN ", StringComparison.Ordinal)).Split(' ');
        return (int.Parse(fields[1]), int.Parse(fields[2]), int.Parse(fields[4]));
    }

    [Fact]
    public void An_orphan_in_a_session_whose_leader_is_gone_comes_back_under_its_subreaper_in_that_session()
    {
        using var target = Start("ckpt_orphan_session");
        var (d, f, session) = OrphanOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            Assert.Equal(3, before.Count);
            Assert.Contains($"{d} ppid {target.Pid} pgid {session} sid {session} live", before);
            Assert.Contains($"{f} ppid {d} pgid {session} sid {session} live", before);
            Assert.False(Directory.Exists($"/proc/{session}"));
            string image = TempPath("orphan-session.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.False(Directory.Exists($"/proc/{session}")); // the helper exited and its parent reaped it
            target.RequirePass(seconds: 30); // R finds no child left but D
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void An_orphan_whose_parent_is_no_longer_a_subreaper_is_refused_by_name_before_anything_is_created()
    {
        using var target = Start("ckpt_orphan_session", "unset-subreaper");
        var (d, _, session) = OrphanOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            string image = TempPath("orphan-no-subreaper.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            var (code, _, stderr) = RunCkpt(EngineTimeout, "restore", "--input", image);
            Assert.Equal(6, code);
            Assert.Contains($"process {target.Pid} has children in session {session}, whose leader is gone, but is not a child subreaper", stderr);
            foreach (int pid in new[] { target.Pid, d, session }) Assert.False(Directory.Exists($"/proc/{pid}"), $"process {pid} exists after the refused restore");
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }
}
