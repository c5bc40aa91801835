using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Restore;

/// <summary>
/// A private anonymous area the engine maps in the task, where the image has nothing, to pass
/// strings and structs to injected system calls. It is unmapped before the task resumes.
/// </summary>
public sealed class ScratchArea
{
    public const ulong Size = 64 * 1024;

    /// <summary>The top of the area holds a <see cref="SyscallBatch"/>: its completion word, then its entries; Put never reaches them.</summary>
    public const ulong BatchAreaSize = 16 * 1024;

    /// <summary>One page after the area, mapped with it (so nothing else is placed there), holds the batch routine: read and execute only once written.</summary>
    public const ulong CodeSize = 4096;

    private const ulong PutLimit = Size - BatchAreaSize;
    private const ulong MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;

    private readonly SyscallInjector _syscalls;
    private ulong _used;

    private ScratchArea(SyscallInjector syscalls, ulong address)
    {
        _syscalls = syscalls;
        Address = address;
    }

    public ulong Address { get; }

    /// <summary>Where a <see cref="SyscallBatch"/> goes.</summary>
    public ulong BatchArea => Address + PutLimit;

    /// <summary>Where the batch routine goes, written with the first batch (<see cref="SyscallBatch"/>).</summary>
    public ulong CodeAddress => Address + Size;

    /// <summary>The batch routine is written and its page read and execute only.</summary>
    public bool HasCode { get; set; }

    /// <summary>Bytes Put can still take before the next Reset.</summary>
    public ulong Remaining => PutLimit - Math.Min(PutLimit, (_used + 15) & ~15ul);

    /// <summary>Maps the area at the first free spot that neither the task nor the image uses.</summary>
    public static ScratchArea Map(SyscallInjector syscalls, IEnumerable<(ulong Start, ulong End)> imageRanges)
    {
        ulong address = FreeAddress(syscalls.Pid, imageRanges, Size + CodeSize);
        syscalls.Call("mmap (scratch area)", SYS_mmap, address, Size + CodeSize, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, ulong.MaxValue, 0);
        return new ScratchArea(syscalls, address);
    }

    /// <summary>The first 64 KiB-aligned address from 256 MiB up where <paramref name="size"/> bytes touch neither the task's mappings nor the image's.</summary>
    public static ulong FreeAddress(int pid, IEnumerable<(ulong Start, ulong End)> imageRanges, ulong size)
    {
        var taken = imageRanges.Concat(MapsLine.ReadAll(pid).Select(m => (m.Start, m.End))).OrderBy(r => r.Item1).ToList();
        ulong candidate = 0x10000000;
        foreach (var (start, end) in taken)
        {
            if (end <= candidate) continue;
            if (start >= candidate + size) break;
            candidate = (end + 0xffff) & ~0xfffful;
        }
        return candidate;
    }

    /// <summary>
    /// The copy of its parent's area that a process made by an injected fork has at the same address
    /// (private memory: writing it changes only the child's copy). Gone with the child's execve.
    /// </summary>
    public static ScratchArea Inherited(SyscallInjector child, ulong address) => new(child, address);

    /// <summary>The child's copy of this area (<see cref="Inherited(SyscallInjector, ulong)"/>), the batch routine in it if this one had it then.</summary>
    public ScratchArea InheritedBy(SyscallInjector child) => new(child, Address) { HasCode = HasCode };

    /// <summary>The area or its code page meets [start, end).</summary>
    public bool Overlaps(ulong start, ulong end) => start < Address + Size + CodeSize && end > Address;

    /// <summary>Forgets earlier contents: call at the start of each step.</summary>
    public void Reset() => _used = 0;

    /// <summary>Copies bytes into the area; returns their address in the task.</summary>
    public ulong Put(ReadOnlySpan<byte> data)
    {
        ulong aligned = (_used + 15) & ~15ul;
        if (aligned + (ulong)data.Length > PutLimit)
            throw new InvalidOperationException($"scratch area of {PutLimit} bytes is too small for {data.Length} more bytes");
        ProcessMemory.WriteWritable(_syscalls.Pid, Address + aligned, data);
        _used = aligned + (ulong)data.Length;
        return Address + aligned;
    }

    public ulong PutStruct<T>(in T value) where T : unmanaged => Put(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    /// <summary>A NUL-terminated UTF-8 string.</summary>
    public ulong PutString(string value) => Put(System.Text.Encoding.UTF8.GetBytes(value + "\0"));

    /// <summary>Reserves bytes (zeroed) for the kernel to write into.</summary>
    public ulong Reserve(int length) => Put(new byte[length]);

    public void Unmap() => _syscalls.Call("munmap (scratch area)", SYS_munmap, Address, Size + CodeSize);
}
