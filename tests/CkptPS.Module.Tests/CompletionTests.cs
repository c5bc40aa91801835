using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

public sealed class CompletionTests : IDisposable
{
    private readonly ModuleSession session = new();

    [Fact]
    public void Id_completes_live_pids_shown_with_their_process_names()
    {
        using var target = TargetProcess.StartSleep();
        string prefix = target.Pid.ToString()[..^1];
        var result = session.Run("""
            $line = 'Checkpoint-Process -Path x.ckpt -Id ' + $args[0]
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches |
                ForEach-Object { $_.CompletionText + '|' + $_.ListItemText }
            """, prefix).AssertClean();
        var matches = result.Output.Select(o => o.ToString()).ToList();
        Assert.Contains($"{target.Pid}|{target.Pid} sleep", matches);
        Assert.All(matches, m => Assert.StartsWith(prefix, m));
    }

    [Fact]
    public void Id_completes_by_process_name()
    {
        using var target = TargetProcess.StartSleep();
        var result = session.Run("""
            $line = 'Checkpoint-Process -Path x.ckpt -Id slee'
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches | ForEach-Object CompletionText
            """).AssertClean();
        Assert.Contains(target.Pid.ToString(), result.Output.Select(o => o.ToString()));
    }

    public void Dispose() => session.Dispose();
}
