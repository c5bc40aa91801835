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

    // Any thread of this process counts: the tracer is the (exiting) tracer thread, not the process.
    private static bool TracedByEngine(int tid, string engine)
    {
        try
        {
            string? tracer = File.ReadLines($"/proc/{tid}/status").FirstOrDefault(l => l.StartsWith("TracerPid:", StringComparison.Ordinal));
            if (tracer is null) return false;
            string tracerId = tracer["TracerPid:".Length..].Trim();
            return tracerId != "0" && (tracerId == engine || Directory.Exists($"/proc/{engine}/task/{tracerId}") || File.Exists($"/proc/{tracerId}/status") && ThreadGroupOf(tracerId) == engine);
        }
        catch (IOException) { return false; }
    }

    private static string? ThreadGroupOf(string tid)
    {
        try { return File.ReadLines($"/proc/{tid}/status").FirstOrDefault(l => l.StartsWith("Tgid:", StringComparison.Ordinal))?["Tgid:".Length..].Trim(); }
        catch (IOException) { return null; }
    }
}
