using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>
/// A checkpoint's injection session in a stopped <see cref="Tracee"/>: runs system calls through a
/// <see cref="SyscallInjector"/> and leaves the task as it was.
/// API: <c>using var remote = RemoteSyscall.Begin(tracee)</c>; <c>remote.Call(name, nr, args...)</c>
/// (throws on -errno) or <c>CallRaw</c>; <c>remote.Scratch</c> is memory in the task for arguments
/// and results (<see cref="WriteScratch"/>, <see cref="ReadScratch"/>); Dispose puts back the
/// scratch bytes, every register and the signal mask. All signals are blocked meanwhile. The
/// scratch area lies below the stack's 128-byte red zone, which no code of the task uses while it
/// is stopped; its previous bytes are saved and written back.
/// </summary>
public sealed class RemoteSyscall : IDisposable
{
    public const int ScratchSize = 4096;
    private const int RedZone = 128;

    private readonly Tracee _tracee;
    private readonly SyscallInjector _injector;
    private readonly UserRegisters _saved;
    private readonly ulong _savedMask;
    private readonly byte[] _savedScratch;
    private readonly int _memFd; // /proc/PID/mem, read and write, for the session's memory accesses
    private bool _disposed;

    private RemoteSyscall(Tracee tracee, ulong syscallAddress)
    {
        _tracee = tracee;
        _saved = tracee.GetRegisters();
        _injector = new SyscallInjector(tracee, syscallAddress, _saved);
        _savedMask = tracee.GetSignalMask();
        Scratch = (_saved.Rsp - RedZone - ScratchSize) & ~63ul;
        _memFd = ProcessMemory.OpenMem(tracee.Pid, Native.O_RDWR);
        try
        {
            _savedScratch = new byte[ScratchSize];
            ProcessMemory.ReadThroughMem(_memFd, tracee.Pid, Scratch, _savedScratch);
        }
        catch
        {
            Native.close(_memFd);
            throw;
        }
        tracee.SetSignalMask(ulong.MaxValue);
    }

    /// <summary>Address of <see cref="ScratchSize"/> bytes of task memory usable for arguments.</summary>
    public ulong Scratch { get; }

    /// <summary>The task injected into.</summary>
    public int Pid => _tracee.Pid;

    /// <summary>The registers the task had when injection began.</summary>
    public UserRegisters OriginalRegisters => _saved;

    public static RemoteSyscall Begin(Tracee tracee) => new(tracee, FindSyscallInstruction(tracee.Pid));

    /// <summary>With the address of a `syscall` instruction found once for the whole process.</summary>
    public static RemoteSyscall Begin(Tracee tracee, ulong syscallAddress) => new(tracee, syscallAddress);

    /// <summary>Runs one system call; returns rax (negative errno on failure).</summary>
    public long CallRaw(long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0) =>
        _injector.CallRaw(number, a1, a2, a3, a4, a5, a6);

    /// <summary>Runs one system call and throws a <see cref="SyscallException"/> naming it on failure.</summary>
    public long Call(string name, long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0) =>
        _injector.Call(name, number, a1, a2, a3, a4, a5, a6);

    /// <summary>
    /// Runs the <see cref="ProbeRoutine"/> over <paramref name="count"/> entries at <paramref name="entries"/> (one stop
    /// for them all, at its int3); returns how many calls it made. The stop must be the routine's own trap
    /// (SI_KERNEL): a SIGTRAP another process sent meanwhile fails the checkpoint rather than pass for it.
    /// </summary>
    public int RunRoutine(ProbeRoutine routine, ulong entries, int count)
    {
        StartRoutine(routine, entries, count);
        return FinishRoutine(routine, count);
    }

    /// <summary><see cref="RunRoutine"/> in two parts (the task runs meanwhile; see <see cref="SyscallInjector.StartCall"/>).</summary>
    public void StartRoutine(ProbeRoutine routine, ulong entries, int count)
    {
        Interlocked.Add(ref SyscallInjector.InjectedCalls, count);
        _injector.StartCode(routine.Address, rbx: entries, r12: (ulong)count, r13: 0);
    }

    public int FinishRoutine(ProbeRoutine routine, int count)
    {
        const int SI_KERNEL = 0x80;
        UserRegisters after = _injector.FinishCode(routine.End, $"a batch of {count} injected reads");
        int code = _tracee.GetSignalCode();
        if (code != SI_KERNEL)
            throw new InvalidOperationException($"task {_tracee.Pid}: a SIGTRAP from another process (si_code {code}) arrived while the checkpoint read its state: try again");
        return (int)after.R13;
    }

    /// <summary>One system call in three parts (<see cref="SyscallInjector.StartCall"/>): the task runs between them.</summary>
    public void StartCall(long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0) =>
        _injector.StartCall(number, a1, a2, a3, a4, a5, a6);

    public void PassEntry() => _injector.PassEntry();

    public long FinishCall() => _injector.FinishCall();

    public void WriteScratch(int offset, ReadOnlySpan<byte> data) => WriteMemory(Scratch + (ulong)offset, data);

    public byte[] ReadScratch(int offset, int length)
    {
        var bytes = new byte[length];
        ProcessMemory.ReadThroughMem(_memFd, _tracee.Pid, Scratch + (ulong)offset, bytes);
        return bytes;
    }

    /// <summary>Writes the task's memory through the session's /proc/PID/mem (forced: also where the mapping is not writable).</summary>
    public void WriteMemory(ulong address, ReadOnlySpan<byte> data) => ProcessMemory.Write(_memFd, _tracee.Pid, address, data);

    public T ReadScratch<T>(int offset) where T : unmanaged => MemoryMarshal.Read<T>(ReadScratch(offset, Marshal.SizeOf<T>()));

    /// <summary>Puts back scratch bytes, registers and signal mask.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (!_tracee.Attached) return;
            WriteMemory(Scratch, _savedScratch);
            _tracee.SetRegisters(_saved);
            _tracee.SetSignalMask(_savedMask);
        }
        finally
        {
            Native.close(_memFd);
        }
    }

    /// <summary>The first `syscall` instruction (0f 05) in the task's [vdso].</summary>
    public static ulong FindSyscallInstruction(int pid) => FindSyscallInstruction(pid, ProcMaps.Read(pid));

    /// <summary>The same, with the task's mappings already read.</summary>
    public static ulong FindSyscallInstruction(int pid, IReadOnlyList<MapsEntry> maps)
    {
        MapsEntry vdso = maps.FirstOrDefault(m => m.Name == "[vdso]")
            ?? throw new InvalidOperationException($"process {pid} has no [vdso] mapping to run system calls through");
        byte[] code = ProcessMemory.ReadExact(pid, vdso.Start, checked((int)(vdso.End - vdso.Start)));
        for (int i = 0; i + 1 < code.Length; i++)
        {
            if (code[i] == 0x0f && code[i + 1] == 0x05) return vdso.Start + (ulong)i;
        }
        throw new InvalidOperationException($"the [vdso] of process {pid} contains no syscall instruction");
    }
}
