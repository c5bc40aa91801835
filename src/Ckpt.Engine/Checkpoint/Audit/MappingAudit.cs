using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// Per mapping of /proc/PID/smaps (from MemoryCheckpoint.Inspect while frozen, and before the freeze):
/// the kinds of memory the image cannot describe, by name or VmFlags. Saved elsewhere: anonymous,
/// shared anonymous and file mappings with their protections, MAP_GROWSDOWN, MAP_NORESERVE and the
/// madvise flags DONTFORK, WIPEONFORK, DONTDUMP, HUGEPAGE, NOHUGEPAGE (VmaRecord.VmFlags, MemoryRestore);
/// [vdso], [vvar], [vvar_vclock] moved to their addresses, [vsyscall] fixed (SpecialMappingsRestore).
/// </summary>
public static class MappingAudit
{
    private static readonly HashSet<string> SpecialMappings = ["[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]"];
    private static readonly HashSet<string> OrdinaryNames = ["[heap]", "[stack]"];

    // VmFlags mnemonics (fs/proc/task_mmu.c) of state the image does not hold.
    private static readonly (string Flag, string What)[] UnsavedFlags =
    [
        ("um", "a userfaultfd-registered range (missing pages: a lazy restore still filling it, or the program's own userfaultfd)"),
        ("uw", "a userfaultfd-registered range (write-protect)"),
        ("ui", "a userfaultfd-registered range (minor faults)"),
        ("lo", "locked memory (mlock or mlockall)"),
        ("lf", "locked memory (mlock2 MLOCK_ONFAULT)"),
        ("ht", "hugetlb memory (MAP_HUGETLB or a hugetlbfs file)"),
        ("sf", "a synchronous DAX mapping (MAP_SYNC)"),
        ("ss", "a shadow stack"),
        ("sl", "sealed memory (mseal)"),
        ("pf", "device memory (VM_PFNMAP)"),
        ("io", "device I/O memory (VM_IO)"),
        ("mm", "a mixed device mapping (VM_MIXEDMAP)"),
        ("mg", "memory marked for KSM merging (MADV_MERGEABLE)"),
    ];

    // Each flag's place in UnsavedFlags: a mapping's flags are looked up once each (every mapping of a tree is
    // checked twice), and the refusal names the first unsaved flag in that list's order, as a scan of it would.
    private static readonly Dictionary<string, int> UnsavedFlagOrder =
        UnsavedFlags.Select((unsaved, index) => (unsaved.Flag, index)).ToDictionary(f => f.Flag, f => f.index);

    public static void Check(int pid, MapsEntry map)
    {
        if (SpecialMappings.Contains(map.Name)) return;
        string? what = KindByName(map);
        if (what is null)
        {
            int first = -1;
            foreach (string name in map.VmFlagNames)
                if (UnsavedFlagOrder.TryGetValue(name, out int index) && (first < 0 || index < first)) first = index;
            if (first >= 0) what = $"{UnsavedFlags[first].What} (VmFlags {UnsavedFlags[first].Flag})";
        }
        if (what is null && map.ProtectionKey != 0) what = $"memory with protection key {map.ProtectionKey} (pkey_mprotect)";
        if (what is null && map.Inode != 0 && map.Name.StartsWith("/dev/", StringComparison.Ordinal) && !map.Name.StartsWith("/dev/zero", StringComparison.Ordinal)
            && !IsRegularFile(map))
            what = "a device mapping";
        if (what is not null)
            throw new CheckpointRefusedException($"process {pid} maps {what} at 0x{map.Start:x}-0x{map.End:x} in /proc/{pid}/smaps ({(map.Name.Length > 0 ? map.Name : "anonymous")}): not checkpointed");
    }

    // A file under /dev that is a regular file with the mapped inode (a program or data on /dev/shm, a
    // tmpfs) is an ordinary file mapping; anything else there (a device node, or a name that no longer
    // leads to the mapped inode) is refused as a device mapping.
    private static bool IsRegularFile(MapsEntry map) =>
        Native.fstatat(Native.AT_FDCWD, map.Name, out Native.Stat stat, 0) == 0
        && (stat.Mode & Native.S_IFMT) == Native.S_IFREG && stat.Inode == map.Inode;

    private static string? KindByName(MapsEntry map)
    {
        string name = map.Name;
        if (name.StartsWith("/[aio]", StringComparison.Ordinal)) return "an aio ring (io_setup)";
        if (name.StartsWith("/SYSV", StringComparison.Ordinal)) return $"a SysV shared memory segment (shmat, key 0x{name[5..13]})";
        if (name.StartsWith("anon_inode:", StringComparison.Ordinal))
            return $"the memory of {DescriptorAudit.AnonymousObjectName(name)}";
        if (name == "[uprobes]") return "the uprobes instruction slots";
        if (name.StartsWith("[anon:", StringComparison.Ordinal) || name.StartsWith("[anon_shmem:", StringComparison.Ordinal))
            return "a named anonymous mapping (prctl PR_SET_VMA_ANON_NAME)";
        if (name.StartsWith('[') && !OrdinaryNames.Contains(name)) return $"a special kernel mapping {name}";
        return null;
    }
}
