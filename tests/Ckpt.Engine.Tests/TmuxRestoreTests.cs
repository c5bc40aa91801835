using System.Text.RegularExpressions;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A real terminal multiplexer not written here (issue 12): a detached tmux server (the checkpoint's
/// root: the daemon the tmux client forked) with two windows, a counting loop and an interactive shell,
/// each on a pseudo-terminal pair whose master the server holds. After `checkpoint --kill` and `restore`
/// the server has its pid, answers `capture-pane` with what the panes showed, the shell echoes and runs
/// keys sent with `send-keys`, and the counter goes on from where it was.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed partial class TmuxRestoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-tmux-").FullName;
    private string Socket => Path.Combine(_directory, "sock");

    public void Dispose()
    {
        Tmux("kill-server");
        Directory.Delete(_directory, recursive: true);
    }

    private string Tmux(params string[] arguments)
    {
        var (_, stdout, _) = RunCli(["-S", Socket, .. arguments], executable: "tmux");
        return stdout;
    }

    private string Pane(int window) => Tmux("capture-pane", "-p", "-t", $":{window}");

    private string WaitForPane(int window, string text)
    {
        for (int i = 0; i < 300; i++)
        {
            string pane = Pane(window);
            if (pane.Contains(text, StringComparison.Ordinal)) return pane;
            Thread.Sleep(100);
        }
        throw new Xunit.Sdk.XunitException($"window {window} never showed '{text}': {Pane(window)}");
    }

    private int LastCount() => CountLine().Matches(Pane(0)).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();

    [GeneratedRegex(@"count (\d+)")]
    private static partial Regex CountLine();

    [Fact]
    public void A_detached_tmux_server_with_its_shells_answers_and_counts_on_after_checkpoint_kill_and_restore()
    {
        Tmux("new-session", "-d", "-x", "100", "-y", "30", "sh -c 'i=0; while :; do i=$((i+1)); echo count $i; sleep 1; done'");
        int server = int.Parse(Tmux("display-message", "-p", "#{pid}").Trim());
        try
        {
            Tmux("new-window", "-d", "sh");
            Tmux("send-keys", "-t", ":1", "echo before-$((6*7))", "Enter");
            WaitForPane(1, "before-42");
            WaitForPane(0, "count 2");

            string image = Path.Combine(_directory, "tmux.img");
            int before = CheckpointKill(server, image);
            RestoreTestProcesses.WaitUntilGone(server);

            var restore = RunCli(["restore", "--input", image]);
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            Assert.Equal(server, int.Parse(restore.Stdout.Trim()));
            Assert.Contains("before-42", Pane(1)); // what the pane showed before
            Tmux("send-keys", "-t", ":1", "echo after-$((6*7))", "Enter");
            string shell = WaitForPane(1, "after-42");
            Assert.Contains("echo after-$((6*7))", shell); // the keys were echoed by the shell's terminal
            string counter = WaitForPane(0, $"count {before + 2}");
            // Counted on, not started again: the loop's variable was restored with the shell.
            Assert.Single(Regex.Matches(counter, "^count 1$", RegexOptions.Multiline));
            Assert.Equal(server, int.Parse(Tmux("display-message", "-p", "#{pid}").Trim()));
        }
        finally
        {
            RestoreTestProcesses.TryKill(server, 9);
        }
    }

    // The server may be answering one of the test's tmux commands, or its pane's output may be unread
    // for an instant (a pair with queued bytes is refused, and the server left as it was): try again.
    private int CheckpointKill(int server, string image)
    {
        string stderr = "";
        for (int attempt = 0; attempt < 5; attempt++)
        {
            int count = LastCount();
            var (code, _, error) = RunCli(["checkpoint", "--pid", server.ToString(), "--output", image, "--kill"]);
            if (code == 0) return count;
            Assert.Equal(6, code);
            stderr += error;
            Thread.Sleep(300);
        }
        throw new Xunit.Sdk.XunitException($"tmux server {server} could not be checkpointed: {stderr}");
    }
}
