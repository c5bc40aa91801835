namespace Ckpt.Engine.Tests;

/// <summary>
/// A real event-loop program not written here (issue 11): node (libuv) with a 100 ms interval timer
/// appending a counter to a file. Node holds four self-pipes, three epoll instances and three eventfds
/// and runs several threads (seven with node 20 here);
/// after `ckpt checkpoint --kill` + `ckpt restore` it keeps its pid and tids, its timer goes on
/// appending from where it was, and its SIGUSR2 handler (delivered through libuv's signal pipe)
/// finds every number once and in order.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class EventLoopRealProgramTests : IDisposable
{
    private const string Node = "/usr/bin/node";
    private const int SIGUSR2 = 12;
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-node-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private const string Script = """
        const fs = require('fs');
        const file = process.argv[2];
        let n = 0;
        fs.writeFileSync(file, '');
        const timer = setInterval(() => { fs.appendFileSync(file, `${n++}\n`); }, 100);
        process.on('SIGUSR2', () => {
          clearInterval(timer);
          const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map(Number);
          const ok = lines.length === n && lines.every((v, i) => v === i);
          console.log(ok ? 'PASS' : `FAIL ${lines.length} lines for ${n} ticks: ${lines.join(' ')}`);
        });
        console.log(`READY ${process.pid}`);
        """;

    [Fact]
    public void Node_with_an_interval_timer_writing_a_file_continues_after_checkpoint_kill_and_restore()
    {
        Assert.True(File.Exists(Node), $"{Node} is not installed: this test needs a real node");
        string script = Path.Combine(_directory, "timer.js"), output = Path.Combine(_directory, "ticks.txt");
        string log = Path.Combine(_directory, "node.log"), image = Path.Combine(_directory, "node.img");
        File.WriteAllText(script, Script);
        int pid = RestoreTestProcesses.Spawn(log, Node, script, output);
        SortedDictionary<int, string> before;
        int ticksAtCheckpoint;
        try
        {
            RestoreTestProcesses.WaitForLine(log, $"READY {pid}");
            WaitForTicks(output, 5, pid);
            string[] kinds = Descriptors(pid).Select(d => d.Split(" -> ")[1]).ToArray();
            Assert.True(kinds.Count(k => k.StartsWith("pipe:")) >= 2 && kinds.Contains("anon_inode:[eventpoll]") && kinds.Contains("anon_inode:[eventfd]"),
                $"node holds no self-pipe, epoll and eventfd: {string.Join(", ", Descriptors(pid))}");
            before = Threads(pid);
            Assert.True(before.Count > 1, "node runs a single thread");
            CkptCheckpoint(pid, image, kill: true);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        ticksAtCheckpoint = Ticks(output);
        Thread.Sleep(500);
        Assert.Equal(ticksAtCheckpoint, Ticks(output)); // killed: nothing more is written

        Assert.Equal(pid, CkptRestore(image));
        try
        {
            var after = Threads(pid);
            Assert.True(before.SequenceEqual(after), $"threads before: {Describe(before)}\nafter: {Describe(after)}");
            WaitForTicks(output, ticksAtCheckpoint + 10, pid);
            RestoreTestProcesses.Signal(pid, SIGUSR2);
            WaitForPass(log, pid, TimeSpan.FromSeconds(20));
        }
        finally
        {
            KillIfAlive(pid);
        }
    }

    private static int Ticks(string output) => File.ReadAllLines(output).Length;

    private static void WaitForTicks(string output, int count, int pid)
    {
        for (int i = 0; i < 2000 && Ticks(output) < count; i++) Thread.Sleep(10);
        Assert.True(Ticks(output) >= count, $"node wrote {Ticks(output)} of {count} ticks within 20 s\n{DescribeThreads(pid)}");
    }
}
