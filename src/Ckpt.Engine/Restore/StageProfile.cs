using System.Diagnostics;

namespace Ckpt.Engine.Restore;

/// <summary>
/// With CKPT_PROFILE=1 in the environment, the wall time of each restore stage is written to stderr
/// ("ckpt: profile: NAME: N.N ms, N injected system calls") when the stage ends: where a restore's time goes, for benchmarks
/// and bug reports (docs/benchmarks.md). Off, it costs one check per stage.
/// </summary>
public static class StageProfile
{
    private static readonly bool Enabled = Environment.GetEnvironmentVariable("CKPT_PROFILE") == "1";

    public static Timing Measure(string name) => new(Enabled ? name : null, Enabled ? Stopwatch.GetTimestamp() : 0, Linux.SyscallInjector.InjectedCalls);

    public readonly struct Timing(string? name, long start, long callsBefore) : IDisposable
    {
        public void Dispose()
        {
            if (name is not null)
                Console.Error.WriteLine($"ckpt: profile: {name}: {Stopwatch.GetElapsedTime(start).TotalMilliseconds:F1} ms, {Linux.SyscallInjector.InjectedCalls - callsBefore} injected system calls");
        }
    }
}
