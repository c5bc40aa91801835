// A .NET console program for the restore tests: allocates (a list of arrays it keeps, checked by a
// sum), runs a timer, tasks on the thread pool and a dedicated thread, and appends a counter to a
// file every 100 ms. SIGUSR2 (PosixSignalRegistration) makes it check that every number is in the
// file once and in order and that the kept allocations are intact, and print PASS or FAIL.
using System.Runtime.InteropServices;

string file = args[0];
File.WriteAllText(file, "");
var kept = new List<byte[]>();
long keptSum = 0;
int ticks = 0;
var gate = new object();
var rng = new Random(42);

void Tick()
{
    lock (gate)
    {
        var block = new byte[4096 + rng.Next(60000)];
        rng.NextBytes(block);
        kept.Add(block);
        foreach (byte b in block) keptSum += b;
        if (kept.Count > 200) { foreach (byte b in kept[0]) keptSum -= b; kept.RemoveAt(0); }
        File.AppendAllText(file, $"{ticks++}\n");
    }
}

using var timer = new Timer(_ => Task.Run(Tick).Wait(), null, 100, 100);
var worker = new Thread(() => { while (true) { _ = new string('x', 1000); Thread.Sleep(10); } }) { IsBackground = true, Name = "churn" };
worker.Start();

using var done = new ManualResetEventSlim();
using var check = PosixSignalRegistration.Create((PosixSignal)12 /* SIGUSR2 */, context =>
{
    context.Cancel = true;
    lock (gate)
    {
        timer.Change(Timeout.Infinite, Timeout.Infinite);
        string[] lines = File.ReadAllText(file).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        bool ordered = lines.Length == ticks && lines.Select(int.Parse).SequenceEqual(Enumerable.Range(0, ticks));
        long sum = kept.Sum(block => block.Sum(b => (long)b));
        Console.WriteLine(ordered && sum == keptSum ? "PASS" : $"FAIL {lines.Length} lines for {ticks} ticks, sum {sum} kept {keptSum}");
    }
    done.Set();
});
Console.WriteLine($"READY {Environment.ProcessId}");
done.Wait();
