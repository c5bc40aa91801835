namespace Ckpt.Engine.Linux;

/// <summary>
/// Who the engine acts for: the real user and group that ran it (not the file capabilities or a
/// setuid bit the binary may carry), read once from /proc/self/status.
/// </summary>
public sealed class Caller
{
    private static readonly Lazy<Caller> current = new(() => From(ProcStatus.Read(Environment.ProcessId)));

    public static Caller Current => current.Value;

    public required uint Uid { get; init; }
    public required uint Gid { get; init; }
    public required uint[] Groups { get; init; }

    /// <summary>The engine's own permitted set (its file capabilities, or the caller's ambient ones).</summary>
    public required ulong CapPermitted { get; init; }

    /// <summary>Ambient capabilities: what a program the engine starts keeps across exec.</summary>
    public required ulong CapAmbient { get; init; }

    public required ulong CapBounding { get; init; }

    /// <summary>Root (real uid 0) may do whatever the kernel lets it; anyone else only acts on their own processes.</summary>
    public bool IsRoot => Uid == 0;

    public static Caller From(ProcStatus status) => new()
    {
        Uid = status.Numbers("Uid")[0], Gid = status.Numbers("Gid")[0], Groups = status.Numbers("Groups"),
        CapPermitted = status.HexNumber("CapPrm"), CapAmbient = status.HexNumber("CapAmb"), CapBounding = status.HexNumber("CapBnd"),
    };

    /// <summary>Same supplementary groups, in any order.</summary>
    public bool HasGroups(IEnumerable<uint> groups) => new HashSet<uint>(Groups).SetEquals(groups);
}
