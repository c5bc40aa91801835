using System.Diagnostics;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// With CKPT_PROFILE=1 in the environment (as for the restore, <see cref="StageProfile"/>): where a
/// checkpoint's time goes. Each step's wall time and injected system calls are summed over every process
/// of the tree and written to stderr when the checkpoint ends, one line per step in the order the steps
/// first ran ("ckpt: profile: checkpoint NAME: N.N ms in K runs, C injected system calls"): a tree's
/// per-process costs show as totals and counts, not as a line per process. Steps may nest (a name with
/// a '/' is part of the step before it). Off, it costs one check per step.
/// </summary>
public static class CheckpointProfile
{
    private static readonly List<string> Order = [];
    private static readonly Dictionary<string, (long Ticks, int Runs, long Calls)> Totals = [];
    private static readonly object Gate = new();

    public static Step Measure(string name) =>
        new(StageProfile.Enabled ? name : null, StageProfile.Enabled ? Stopwatch.GetTimestamp() : 0, Linux.SyscallInjector.InjectedCalls);

    /// <summary>Writes the totals so far (nothing when off or when nothing was measured) and starts over.</summary>
    public static void Report()
    {
        if (!StageProfile.Enabled) return;
        lock (Gate)
        {
            foreach (string name in Order)
            {
                var (ticks, runs, calls) = Totals[name];
                Console.Error.WriteLine($"ckpt: profile: checkpoint {name}: {ticks * 1000.0 / Stopwatch.Frequency:F1} ms in {runs} runs, {calls} injected system calls");
            }
            Order.Clear();
            Totals.Clear();
        }
    }

    private static void Add(string name, long ticks, long calls)
    {
        lock (Gate)
        {
            if (!Totals.TryGetValue(name, out var total)) Order.Add(name);
            Totals[name] = (total.Ticks + ticks, total.Runs + 1, total.Calls + calls);
        }
    }

    public readonly struct Step(string? name, long start, long callsBefore) : IDisposable
    {
        public void Dispose()
        {
            if (name is not null) Add(name, Stopwatch.GetTimestamp() - start, Linux.SyscallInjector.InjectedCalls - callsBefore);
        }
    }
}
