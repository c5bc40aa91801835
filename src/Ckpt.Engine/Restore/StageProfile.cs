using System.Diagnostics;

namespace Ckpt.Engine.Restore;

/// <summary>
/// With CKPT_PROFILE=1 in the environment, the wall time of each restore stage is written to stderr
/// ("ckpt: profile: NAME: N.N ms, N injected system calls, at T ms") when the stage ends: where a
/// restore's time goes, for benchmarks and bug reports (docs/benchmarks.md). T is CLOCK_MONOTONIC in
/// milliseconds (the clock of Stopwatch on Linux), so a harness that notes the same clock when it
/// starts `ckpt` sees the startup before the first stage and the end after the last. Off, it costs
/// one check per stage.
/// </summary>
public static class StageProfile
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("CKPT_PROFILE") == "1";

    public static Timing Measure(string name) => new(Enabled ? name : null, Enabled ? Stopwatch.GetTimestamp() : 0, Linux.SyscallInjector.InjectedCalls);

    /// <summary>A moment rather than a stage ("NAME: at T ms"): the start of Main, the answer of the page server.</summary>
    public static void Mark(string name)
    {
        if (Enabled) Console.Error.WriteLine($"ckpt: profile: {name}: at {Now:F1} ms");
    }

    private static double Now => Stopwatch.GetTimestamp() * 1000.0 / Stopwatch.Frequency;

    public readonly struct Timing(string? name, long start, long callsBefore) : IDisposable
    {
        public void Dispose()
        {
            if (name is not null)
                Console.Error.WriteLine($"ckpt: profile: {name}: {Stopwatch.GetElapsedTime(start).TotalMilliseconds:F1} ms, {Linux.SyscallInjector.InjectedCalls - callsBefore} injected system calls, at {Now:F1} ms");
        }
    }
}
