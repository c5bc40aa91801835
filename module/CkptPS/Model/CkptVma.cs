using Ckpt.Image.Records;

namespace CkptPS;

/// <summary>
/// One memory mapping of a checkpointed task, as /proc/PID/maps would have shown it.
/// The kernel's names (vma_type, vm_start, vm_end, vm_flags, vm_pgoff) are alias
/// properties added by CkptPS.types.ps1xml.
/// </summary>
public sealed class CkptVma
{
    public required string ImagePath { get; init; }
    public required int Pid { get; init; }
    public required VmaType VmaType { get; init; }
    public required ulong Start { get; init; }
    public required ulong End { get; init; }
    public ulong Size => End - Start;
    /// <summary>"r-xp" as in /proc/PID/maps: read, write, execute, then private or shared.</summary>
    public required string Protection { get; init; }
    public required VmaFlags Flags { get; init; }
    public string FlagsText => VmaFlagsText.Text(Flags);
    /// <summary>Offset into the file in pages (vm_pgoff).</summary>
    public required ulong PageOffset { get; init; }
    /// <summary>Offset into the file in bytes, as maps prints it.</summary>
    public required ulong Offset { get; init; }
    /// <summary>The mapped file, or the kernel's name for the mapping ([heap], [stack], [vdso], ...); empty for plain anonymous memory.</summary>
    public required string Path { get; init; }
    public required ulong Device { get; init; }
    public required ulong Inode { get; init; }
    /// <summary>"MAJOR:MINOR" in hex, as maps prints it.</summary>
    public string DeviceText => $"{((Device >> 8) & 0xfff) | ((Device >> 32) & 0xfffff000):x2}:{(Device & 0xff) | ((Device >> 12) & 0xffffff00):x2}";
    public required ulong PagesSaved { get; init; }
    public required ulong SavedBytes { get; init; }

    public override string ToString() => $"{Start:x}-{End:x} {Protection} {Path}";
}
