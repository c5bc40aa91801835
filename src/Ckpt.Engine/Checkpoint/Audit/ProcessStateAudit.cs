using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// Process-wide state in /proc that the image does not hold: namespaces, per-mm flags (transparent huge
/// pages disabled, KSM for the whole process), values a restored process inherits from the restoring
/// engine instead (oom_score_adj, coredump_filter; the timer slack is probed per thread), and NUMA memory policies. Each is
/// refused when it differs from what the restore would give, i.e. from the engine's own.
/// </summary>
public static class ProcessStateAudit
{
    /// <summary>Every namespace kind of /proc/self/ns; the *_for_children ones too (a process that called unshare(CLONE_NEWPID) has one).</summary>
    /// <param name="status">/proc/PID/status if already read (frozen, it does not change), else read here</param>
    public static void Check(int pid, ProcStatus? status = null)
    {
        CheckNamespaces(pid);
        status ??= ProcStatus.Read(pid);
        if (status.Has("THP_enabled") && status.Number("THP_enabled") == 0)
            throw new CheckpointRefusedException($"process {pid} disabled transparent huge pages (prctl PR_SET_THP_DISABLE; THP_enabled: 0 in /proc/{pid}/status): not checkpointed");
        string ksm = $"/proc/{pid}/ksm_stat";
        if (ProcText.ReadAllTextIfExists(ksm) is { } ksmStat && ProcText.SplitLines(ksmStat).Any(l => l.Replace(" ", "") == "ksm_merge_any:yes"))
            throw new CheckpointRefusedException($"process {pid} asked KSM to merge all its memory (prctl PR_SET_MEMORY_MERGE; ksm_merge_any in {ksm}): not checkpointed");
        foreach (string name in InheritedFromEngine)
        {
            string file = $"/proc/{pid}/{name}";
            if (ProcText.ReadAllTextIfExists(file) is not { } text) continue;
            string value = text.Trim(), engine = EngineValues.Value[name];
            if (value != engine)
                throw new CheckpointRefusedException($"process {pid} has {name} {value} ({file}), a restored process gets the engine's {engine}: not checkpointed");
        }
    }

    // The restored process is created by the restoring engine and inherits these from it.
    private static readonly string[] InheritedFromEngine = ["oom_score_adj", "coredump_filter"];

    // The engine's own values and namespaces, read once: they do not change while it runs, and a tree
    // of a hundred processes is audited twice each (before the freeze and while frozen).
    private static readonly Lazy<Dictionary<string, string>> EngineValues = new(() =>
        InheritedFromEngine.Where(name => File.Exists($"/proc/self/{name}")).ToDictionary(name => name, name => File.ReadAllText($"/proc/self/{name}").Trim()));

    private static readonly Lazy<List<(string Kind, string? Target)>> EngineNamespaces = new(() =>
        Directory.GetFileSystemEntries("/proc/self/ns").Order().Select(own => (Path.GetFileName(own), new FileInfo(own).LinkTarget)).ToList());

    private static void CheckNamespaces(int pid)
    {
        foreach (var (kind, engine) in EngineNamespaces.Value)
        {
            string? target = new FileInfo($"/proc/{pid}/ns/{kind}").LinkTarget;
            if (target is not null && target != engine)
                throw new CheckpointRefusedException($"process {pid} is in another {kind} namespace ({target} in /proc/{pid}/ns/{kind}, the engine's {engine}): namespaces are not checkpointed");
        }
    }

    /// <summary>
    /// Before the freeze only (numa_maps walks the page tables, like smaps): every mapping's memory
    /// policy, which for mappings without their own (mbind) shows the leader's (set_mempolicy); the
    /// other threads' own policies are probed while frozen (<see cref="InjectedProbes"/>).
    /// </summary>
    public static void CheckMemoryPolicies(int pid)
    {
        string file = $"/proc/{pid}/numa_maps";
        if (ProcText.ReadAllTextIfExists(file) is not { } policies) return; // a kernel without NUMA: no policies
        foreach (string line in ProcText.SplitLines(policies))
        {
            string[] fields = line.Split(' ', 3);
            if (fields.Length >= 2 && fields[1] != "default")
                throw new CheckpointRefusedException($"process {pid} has the memory policy '{fields[1]}' at 0x{fields[0]} (mbind or set_mempolicy; {file}): not checkpointed");
        }
    }
}
