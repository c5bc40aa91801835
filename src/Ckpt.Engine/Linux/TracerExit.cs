namespace Ckpt.Engine.Linux;

/// <summary>The kernel detaches released tasks when the tracer thread has exited, a moment after it returns.</summary>
public static class TracerExit
{
    /// <summary>Waits (at most about a second) until none of the tasks is traced by this process any more.</summary>
    public static void WaitUntilDetached(IEnumerable<int> tids)
    {
        string engine = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (int tid in tids)
        {
            for (int attempt = 0; attempt < 1000 && TracedByEngine(tid, engine); attempt++) Thread.Sleep(1);
        }
    }

    // The tracer is the (exiting) tracer thread, a thread of this process, not the process itself.
    private static bool TracedByEngine(int tid, string engine)
    {
        try
        {
            string? tracer = File.ReadLines($"/proc/{tid}/status").FirstOrDefault(l => l.StartsWith("TracerPid:", StringComparison.Ordinal));
            string tracerId = tracer?["TracerPid:".Length..].Trim() ?? "0";
            return tracerId != "0" && Directory.Exists($"/proc/{engine}/task/{tracerId}");
        }
        catch (IOException) { return false; }
    }
}
