using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Empties the new task's address space of everything but its special mappings and the
/// scratch area, then moves vdso, vvar and vvar_vclock (each with its own mremap: one mremap
/// cannot span two VMAs) to the addresses the image recorded, by way of a free spot so that
/// no move lands on a special mapping that has not moved yet.
/// </summary>
public static class SpecialMappingsRestore
{
    private const ulong MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;

    /// <summary>
    /// Adds the unmaps and the moves to <paramref name="batch"/> (which may hold calls of the stages
    /// before) and runs it: one ptrace stop, planned from one read of /proc/PID/maps. The batch routine
    /// runs in the scratch area's code page, not the vdso, so the vdso may move under it; the injector
    /// learns the new address of its syscall instruction afterwards.
    /// </summary>
    public static long[] Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, SyscallBatch batch)
    {
        IReadOnlyList<MapsLine> before = MapsLine.ReadAll(syscalls.Pid);
        var kept = new List<MapsLine>();
        foreach (MapsLine mapping in before)
        {
            if (mapping.IsSpecial || mapping.Start == scratch.Address || mapping.Start == scratch.CodeAddress) { kept.Add(mapping); continue; }
            batch.Add($"munmap of the stub's {Describe(mapping)}", SYS_munmap, mapping.Start, mapping.End - mapping.Start);
        }
        // One already in its place (inherited from a creator that moved its own, StubTeardown) stays: no
        // other mapping's recorded place can overlap it.
        var moves = PlanMoves(kept, plan).Where(m => m.Current.Start != m.Target.VmStart).ToList();
        ulong vdsoShift = 0;
        if (moves.Count > 0)
        {
            ulong spanStart = moves.Min(m => m.Current.Start);
            ulong spanEnd = moves.Max(m => m.Current.End);
            ulong parking = FreeSpot(kept, plan, spanEnd - spanStart);
            foreach (var move in moves)
                AddMove(batch, move.Current.Name, move.Current.Start, parking + (move.Current.Start - spanStart), move.Current.End - move.Current.Start);
            foreach (var move in moves)
            {
                AddMove(batch, move.Current.Name, parking + (move.Current.Start - spanStart), move.Target.VmStart, move.Current.End - move.Current.Start);
                if (move.Current.Name == "[vdso]") vdsoShift = move.Target.VmStart - move.Current.Start;
            }
        }
        long[] results = batch.Run();
        if (vdsoShift != 0) syscalls.RelocateSyscall((long)vdsoShift);
        return results;
    }

    private static List<(MapsLine Current, VmaRecord Target)> PlanMoves(IEnumerable<MapsLine> kept, RestorePlan plan)
    {
        var current = kept.Where(m => m.IsSpecial && m.Name != "[vsyscall]").ToList();
        var moves = new List<(MapsLine, VmaRecord)>();
        foreach (var mapping in current)
        {
            VmaType type = mapping.Name switch { "[vdso]" => VmaType.Vdso, "[vvar]" => VmaType.Vvar, _ => VmaType.VvarVclock };
            var recorded = plan.Vmas.Where(v => v.Record.VmaType == type).ToList();
            if (recorded.Count != 1)
                throw new RestoreRefusedException($"this kernel gives the task a {mapping.Name} mapping, the image records {recorded.Count}: the kernels differ too much");
            if (recorded[0].Length != mapping.End - mapping.Start)
                throw new RestoreRefusedException($"{mapping.Name} is {mapping.End - mapping.Start} bytes here, {recorded[0].Length} in the image: the kernels differ");
            moves.Add((mapping, recorded[0].Record));
        }
        foreach (var vma in plan.Vmas.Where(v => v.Record.VmaType is VmaType.Vdso or VmaType.Vvar or VmaType.VvarVclock))
        {
            if (!moves.Any(m => m.Item2.VmStart == vma.Record.VmStart))
                throw new RestoreRefusedException($"the image has a {vma.Record.VmaType} mapping that this kernel does not give a new task");
        }
        return moves;
    }

    private static void AddMove(SyscallBatch batch, string name, ulong from, ulong to, ulong length)
    {
        if (from == to) return;
        batch.Add($"mremap of {name} to 0x{to:x}", SYS_mremap, from, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    }

    /// <summary>A free range of the given length, clear of <paramref name="mappings"/> (the task's, as they will be) and the image's.</summary>
    private static ulong FreeSpot(IEnumerable<MapsLine> mappings, RestorePlan plan, ulong length)
    {
        var taken = plan.Vmas.Select(v => (v.Record.VmStart, v.Record.VmEnd))
            .Concat(mappings.Select(m => (m.Start, m.End))).OrderBy(r => r.Item1).ToList();
        ulong candidate = 0x20000000;
        foreach (var (start, end) in taken)
        {
            if (end <= candidate) continue;
            if (start >= candidate + length) break;
            candidate = (end + 0xffff) & ~0xfffful;
        }
        return candidate;
    }

    private static string Describe(MapsLine mapping) =>
        $"0x{mapping.Start:x}-0x{mapping.End:x} {(mapping.Name.Length > 0 ? mapping.Name : "(anonymous)")}";
}
