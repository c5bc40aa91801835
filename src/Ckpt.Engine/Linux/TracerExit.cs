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

    /// <summary>
    /// Waits (at most about a second) until the engine's thread <paramref name="tracerTid"/> is gone: the kernel
    /// detaches every task it traced in its exit, before the thread is reaped (exit_ptrace in exit_notify), so
    /// one look at /proc/self/task answers for all the tasks, where <see cref="WaitUntilDetached"/> reads each one's status.
    /// </summary>
    public static void WaitUntilGone(int tracerTid)
    {
        for (int attempt = 0; attempt < 2000 && Directory.Exists($"/proc/self/task/{tracerTid}"); attempt++)
        {
            if (attempt < 1000) Thread.Yield();
            else Thread.Sleep(1);
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
