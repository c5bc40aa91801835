using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Linux;

/// <summary>
/// The checkpoint's batch routine (<see cref="ProbeBatch"/>): a page of the engine's code mapped in a
/// stopped process for the time of its injected reads, then unmapped, so that the read-only calls a
/// thread needs (about twenty per process) cost one stop instead of two each. The page is private,
/// anonymous and read-and-execute (never writable: the routine is put there through /proc/PID/mem),
/// placed with a free page on each side so that it cannot merge with a mapping of the process. The
/// process's memory is inspected before the page exists and the page is gone before anything of the
/// process is written, so the image never sees it; a failed checkpoint unmaps it before the release.
/// Where the page cannot be mapped or written (a mapping limit, a kernel refusing forced writes), the
/// calls are injected one by one as before.
/// </summary>
public sealed class ProbeRoutine
{
    private const ulong PageSize = 4096;
    private const ulong PROT_READ = 1, PROT_EXEC = 4, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;
    private const int SIGTRAP = 5;

    private ProbeRoutine(ulong address) => Address = address;

    public ulong Address { get; }

    /// <summary>Where the routine stops (after its int3).</summary>
    public ulong End => Address + (ulong)Code.Length;

    /// <summary>Starts the injected mmap of the page at <paramref name="address"/> (<see cref="FreeAddress"/>: a page of the
    /// process's mappings as /proc/PID/maps lists them); <see cref="Mapped"/> once it returned.</summary>
    public static void StartMap(RemoteSyscall remote, ulong address) =>
        remote.StartCall(SYS_mmap, address, PageSize, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, ulong.MaxValue, 0);

    /// <summary>The routine once mmap returned <paramref name="mapped"/>: written into the page, or null (nothing left mapped) where that failed.</summary>
    public static ProbeRoutine? Mapped(RemoteSyscall remote, ulong address, long mapped)
    {
        if (mapped < 0 && mapped > -4096) return null;
        var routine = new ProbeRoutine((ulong)mapped);
        try
        {
            if ((ulong)mapped != address) throw new InvalidOperationException($"mmap placed the routine at 0x{mapped:x}, not at 0x{address:x}");
            remote.WriteMemory(routine.Address, Code);
            return routine;
        }
        catch (Exception e) when (e is SyscallException or InvalidOperationException)
        {
            routine.Unmap(remote);
            return null;
        }
    }

    /// <summary>Unmaps the page (through a session in any thread of the process).</summary>
    public void Unmap(RemoteSyscall remote) => remote.Call("munmap (batch routine)", SYS_munmap, Address, PageSize);

    /// <summary><see cref="Unmap"/> in parts: started here, then <see cref="RemoteSyscall.PassEntry"/> and <see cref="FinishUnmap"/>.</summary>
    public void StartUnmap(RemoteSyscall remote) => remote.StartCall(SYS_munmap, Address, PageSize);

    public void FinishUnmap(RemoteSyscall remote)
    {
        long result = remote.FinishCall();
        if (result < 0 && result > -4096) throw new SyscallException("munmap (batch routine)", (int)-result, remote.Pid, "injected into the task");
    }

    /// <summary>
    /// The routine may run in a thread whose status this is. It stops at an int3, whose SIGTRAP the kernel
    /// forces: with SIGTRAP blocked (every signal is, in a session) it resets a caught or ignored SIGTRAP's
    /// handler to SIG_DFL, and a SIGTRAP already pending would be the one reported (and then suppressed).
    /// So only where SIGTRAP is neither caught, ignored nor pending; elsewhere the calls go one by one.
    /// </summary>
    public static bool MayRunIn(ProcStatus thread)
    {
        const ulong bit = 1ul << (SIGTRAP - 1);
        ulong handled = thread.HexNumber("SigCgt") | thread.HexNumber("SigIgn") | thread.HexNumber("SigPnd") | thread.HexNumber("ShdPnd");
        return (handled & bit) == 0;
    }

    // A page-aligned address from 256 MiB up with a free page below and above it: the routine's page
    // then touches no mapping (which it could merge with). Null if the address space has no such gap.
    public static ulong? FreeAddress(IReadOnlyList<MapsEntry> maps)
    {
        const ulong Lowest = 0x10000000, Highest = 0x7fff_ffff_f000;
        ulong candidate = Lowest;
        foreach (MapsEntry map in maps.OrderBy(m => m.Start))
        {
            if (map.End + PageSize <= candidate) continue;
            if (map.Start >= candidate + 2 * PageSize) break;
            candidate = map.End + PageSize;
        }
        return candidate + 2 * PageSize <= Highest ? candidate : null;
    }

    /// <summary>
    /// x86-64. In: rbx = the entries (<see cref="ProbeBatch.EntrySize"/> bytes each: number, six
    /// arguments, result), r12 = their count, r13 = 0. Makes each call and stores rax in its entry,
    /// failures included (every call is a read; the engine judges the results). Out, at the int3: r13 =
    /// the number of calls made. rbx, r12, r13 and r15 survive the syscall instruction.
    /// </summary>
    private static readonly byte[] Code =
    [
        0x4d, 0x39, 0xe5,             // 00 next: cmp r13, r12
        0x73, 0x30,                   // 03       jae done
        0x4d, 0x89, 0xef,             // 05       mov r15, r13
        0x49, 0xc1, 0xe7, 0x06,       // 08       shl r15, 6
        0x49, 0x01, 0xdf,             // 0c       add r15, rbx          ; r15 = this entry
        0x49, 0x8b, 0x07,             // 0f       mov rax, [r15]
        0x49, 0x8b, 0x7f, 0x08,       // 12       mov rdi, [r15 + 8]
        0x49, 0x8b, 0x77, 0x10,       // 16       mov rsi, [r15 + 16]
        0x49, 0x8b, 0x57, 0x18,       // 1a       mov rdx, [r15 + 24]
        0x4d, 0x8b, 0x57, 0x20,       // 1e       mov r10, [r15 + 32]
        0x4d, 0x8b, 0x47, 0x28,       // 22       mov r8, [r15 + 40]
        0x4d, 0x8b, 0x4f, 0x30,       // 26       mov r9, [r15 + 48]
        0x0f, 0x05,                   // 2a       syscall
        0x49, 0x89, 0x47, 0x38,       // 2c       mov [r15 + 56], rax
        0x49, 0xff, 0xc5,             // 30       inc r13
        0xeb, 0xcb,                   // 33       jmp next
        0xcc,                         // 35 done: int3
    ];
}
