using Xunit;

namespace CkptPS.Module.Tests.Infrastructure;

/// <summary>Tests that run the real engine go one at a time: they ptrace and recreate pids on a 2-core machine.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EngineCollection
{
    public const string Name = "engine";
}
