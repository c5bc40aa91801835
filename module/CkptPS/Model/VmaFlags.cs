namespace CkptPS;

/// <summary>
/// The kernel's VM_* bits (include/linux/mm.h, x86-64), as VmaRecord.VmFlags stores them.
/// <see cref="Text"/> renders them with the two-letter names of /proc/PID/smaps "VmFlags".
/// </summary>
[Flags]
public enum VmaFlags : ulong
{
    None = 0,
    Read = 0x1,
    Write = 0x2,
    Exec = 0x4,
    Shared = 0x8,
    MayRead = 0x10,
    MayWrite = 0x20,
    MayExec = 0x40,
    MayShare = 0x80,
    GrowsDown = 0x100,
    UffdMissing = 0x200,
    PfnMap = 0x400,
    UffdWriteProtect = 0x1000,
    Locked = 0x2000,
    Io = 0x4000,
    SequentialRead = 0x8000,
    RandomRead = 0x10000,
    DontCopy = 0x20000,
    DontExpand = 0x40000,
    LockOnFault = 0x80000,
    Account = 0x100000,
    NoReserve = 0x200000,
    HugeTlb = 0x400000,
    Sync = 0x800000,
    Arch1 = 0x1000000,
    WipeOnFork = 0x2000000,
    DontDump = 0x4000000,
    SoftDirty = 0x8000000,
    MixedMap = 0x10000000,
    HugePage = 0x20000000,
    NoHugePage = 0x40000000,
    Mergeable = 0x80000000,
}

public static class VmaFlagsText
{
    private static readonly (VmaFlags Flag, string Name)[] SmapsNames =
    [
        (VmaFlags.Read, "rd"), (VmaFlags.Write, "wr"), (VmaFlags.Exec, "ex"), (VmaFlags.Shared, "sh"),
        (VmaFlags.MayRead, "mr"), (VmaFlags.MayWrite, "mw"), (VmaFlags.MayExec, "me"), (VmaFlags.MayShare, "ms"),
        (VmaFlags.GrowsDown, "gd"), (VmaFlags.PfnMap, "pf"), (VmaFlags.Locked, "lo"), (VmaFlags.Io, "io"),
        (VmaFlags.SequentialRead, "sr"), (VmaFlags.RandomRead, "rr"), (VmaFlags.DontCopy, "dc"),
        (VmaFlags.DontExpand, "de"), (VmaFlags.LockOnFault, "lf"), (VmaFlags.Account, "ac"),
        (VmaFlags.NoReserve, "nr"), (VmaFlags.HugeTlb, "ht"), (VmaFlags.Sync, "sf"), (VmaFlags.Arch1, "ar"),
        (VmaFlags.WipeOnFork, "wf"), (VmaFlags.DontDump, "dd"), (VmaFlags.SoftDirty, "sd"),
        (VmaFlags.MixedMap, "mm"), (VmaFlags.HugePage, "hg"), (VmaFlags.NoHugePage, "nh"),
        (VmaFlags.Mergeable, "mg"), (VmaFlags.UffdMissing, "um"), (VmaFlags.UffdWriteProtect, "uw"),
    ];

    /// <summary>"rd wr mr mw me ac", as smaps shows them.</summary>
    public static string Text(VmaFlags flags) =>
        string.Join(' ', SmapsNames.Where(entry => (flags & entry.Flag) != 0).Select(entry => entry.Name));
}
