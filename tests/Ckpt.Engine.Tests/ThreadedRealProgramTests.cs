namespace Ckpt.Engine.Tests;

/// <summary>
/// Multi-threaded programs not written for this project (issue 9): a CPython and a perl program,
/// each with worker threads updating shared state under a lock, one thread in a sleep and one in
/// an event/condition wait. Checkpointed with --kill and restored, each keeps its pid and its tids,
/// goes on printing progress from where it was, its state stays consistent, and on SIGUSR1 it
/// wakes the waiting thread, joins everything and prints PASS.
///
/// Descriptors: started with stdin /dev/null and stdout/stderr to a log, python3 (3.11) and perl
/// (5.36, ithreads) hold nothing else (checked below, so that a refusal is understood). A JVM was
/// looked at too: `java Foo.java` (the source launcher) holds a socket; a precompiled class with
/// -XX:-UsePerfData holds only 0-2 and its lib/modules file (regular) and runs about 20 threads.
/// It is not a test here yet: perl is the second runtime, with regular files and devices only.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class ThreadedRealProgramTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-threaded-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private const string PythonScript = """
        import os, signal, threading, time

        WORKERS = 4
        lock = threading.Lock()
        state = {"total": 0, "a": 0, "b": 0, "sleeps": 0}
        per_worker = [0] * WORKERS
        stop = threading.Event()
        release = threading.Event()   # the waiter blocks on it until the end
        waiter_saw = []

        def worker(i):
            while not stop.is_set():
                x = sum(j * j for j in range(300 + i))
                with lock:
                    state["total"] += 1
                    state["a"] += x
                    state["b"] -= x
                    per_worker[i] += 1

        def sleeper():
            while not stop.is_set():
                time.sleep(0.3)
                with lock:
                    state["sleeps"] += 1

        def waiter():
            release.wait()
            waiter_saw.append(stop.is_set())

        def consistent():
            return state["a"] + state["b"] == 0 and state["total"] == sum(per_worker)

        signal.signal(signal.SIGUSR1, lambda *_: stop.set())
        threads = [threading.Thread(target=worker, args=(i,), name=f"worker{i}") for i in range(WORKERS)]
        threads += [threading.Thread(target=sleeper, name="sleeper"), threading.Thread(target=waiter, name="waiter")]
        for t in threads:
            t.start()
        print("READY", os.getpid(), flush=True)
        while not stop.is_set():
            time.sleep(0.1)
            with lock:
                print("PROGRESS", state["total"], state["sleeps"], "ok" if consistent() else "INCONSISTENT", flush=True)
        release.set()
        for t in threads:
            t.join()
        print("PASS" if consistent() and waiter_saw == [True] else f"FAIL {state} {per_worker} {waiter_saw}", flush=True)
        """;

    private const string PerlScript = """
        use strict;
        use warnings;
        use threads;
        use threads::shared;
        use Time::HiRes qw(sleep);
        $| = 1;
        my $workers = 4;
        my $total :shared = 0;
        my $plus :shared = 0;
        my $minus :shared = 0;
        my $sleeps :shared = 0;
        my @per :shared = (0) x $workers;
        my $stop :shared = 0;
        my $release :shared = 0;
        my $waiter_saw :shared = -1;

        sub worker {
            my $i = shift;
            until ($stop) {
                my $x = 0;
                $x += $_ * $_ for 1 .. 300 + $i;
                lock($total);
                $total++; $plus += $x; $minus -= $x; $per[$i]++;
            }
        }
        sub sleeper { until ($stop) { sleep 0.3; lock($total); $sleeps++; } }
        sub waiter { lock($release); cond_wait($release) until $release; $waiter_saw = $stop; }
        sub consistent { lock($total); my $sum = 0; $sum += $_ for @per; return $plus + $minus == 0 && $total == $sum; }

        $SIG{USR1} = sub { $stop = 1 };   # $stop is shared: whichever thread's interpreter runs it
        my @threads = map { threads->create(\&worker, $_) } 0 .. $workers - 1;
        push @threads, threads->create(\&sleeper), threads->create(\&waiter);
        print "READY $$\n";
        until ($stop) {
            sleep 0.1;
            my $ok = consistent() ? "ok" : "INCONSISTENT";
            lock($total);
            print "PROGRESS $total $sleeps $ok\n";
        }
        { lock($release); $release = 1; cond_signal($release); }
        $_->join for @threads;
        print consistent() && $waiter_saw == 1 ? "PASS\n" : "FAIL total $total plus $plus minus $minus waiter $waiter_saw\n";
        """;

    [Fact]
    public void A_threaded_CPython_program_continues_with_its_pid_tids_and_state() =>
        CheckpointRestoreAndContinue("/usr/bin/python3", ["-u"], "threads.py", PythonScript, threadCount: 7);

    [Fact]
    public void A_threaded_perl_program_continues_with_its_pid_tids_and_state() =>
        CheckpointRestoreAndContinue("/usr/bin/perl", [], "threads.pl", PerlScript, threadCount: 7);

    private readonly record struct Progress(long Total, long Sleeps, bool Ok);

    private void CheckpointRestoreAndContinue(string interpreter, string[] options, string scriptName, string script, int threadCount)
    {
        string path = Path.Combine(_directory, scriptName), log = Path.Combine(_directory, scriptName + ".log");
        string image = Path.Combine(_directory, scriptName + ".img");
        File.WriteAllText(path, script);
        int pid = RestoreTestProcesses.Spawn(log, interpreter, [.. options, path]);
        SortedDictionary<int, string> before;
        try
        {
            RestoreTestProcesses.WaitForLine(log, $"READY {pid}");
            WaitForProgress(log, 5, pid);
            // The interpreters hold only these (node, with its pipes and epolls: EventLoopRealProgramTests).
            Assert.Equal(["0 -> /dev/null", $"1 -> {log}", $"2 -> {log}"], Descriptors(pid));
            before = Threads(pid);
            Assert.Equal(threadCount, before.Count);
            CkptCheckpoint(pid, image, kill: true);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        Progress[] atCheckpoint = ReadProgress(log);
        Assert.All(atCheckpoint, p => Assert.True(p.Ok, "inconsistent before the checkpoint"));

        Assert.Equal(pid, CkptRestore(image));
        try
        {
            var after = Threads(pid);
            Assert.True(before.SequenceEqual(after), $"threads before: {Describe(before)}\nafter: {Describe(after)}");
            WaitForProgress(log, atCheckpoint.Length + 10, pid);
            Progress[] restored = ReadProgress(log)[atCheckpoint.Length..];
            Assert.All(restored, p => Assert.True(p.Ok, $"inconsistent after the restore: {File.ReadAllText(log)}"));
            Assert.True(restored[0].Total >= atCheckpoint[^1].Total, $"the work restarted: {atCheckpoint[^1].Total} before, {restored[0].Total} after");
            Assert.True(restored[^1].Total > restored[0].Total, "the workers do not compute after the restore");
            Assert.True(restored[^1].Sleeps > atCheckpoint[^1].Sleeps, "the sleeping thread never woke after the restore");
            RestoreTestProcesses.Signal(pid, SIGUSR1);
            WaitForPass(log, pid, TimeSpan.FromSeconds(30)); // the waiting thread wakes, all join, the state adds up
        }
        finally
        {
            KillIfAlive(pid);
        }
    }

    private static Progress[] ReadProgress(string log) =>
        LinesStarting(log, "PROGRESS ").Select(l => l.Split(' ')).Where(f => f.Length == 4)
            .Select(f => new Progress(long.Parse(f[1]), long.Parse(f[2]), f[3] == "ok")).ToArray();

    private static void WaitForProgress(string log, int count, int pid)
    {
        for (int i = 0; i < 1000 && ReadProgress(log).Length < count; i++) Thread.Sleep(10);
        Assert.True(ReadProgress(log).Length >= count, $"fewer than {count} PROGRESS lines in {log} after 10 s:\n{File.ReadAllText(log)}\n{DescribeThreads(pid)}");
    }
}
