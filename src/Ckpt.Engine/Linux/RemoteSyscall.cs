using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Runs system calls inside a stopped <see cref="Tracee"/> (syscall injection), leaving it as it was.
/// API: <c>using var remote = RemoteSyscall.Begin(tracee)</c>; <c>remote.Call(name, nr, args...)</c>
/// (throws on -errno) or <c>CallRaw</c>; <c>remote.Scratch</c> is memory in the task for arguments
/// and results (<see cref="WriteScratch"/>, <see cref="ReadScratch"/>); Dispose puts back the
/// scratch bytes, every register and the signal mask.
/// How: rip points at a `0f 05` pair in the task's [vdso] (no code of ours enters the task),
/// orig_rax = -1 so the kernel's syscall-restart logic cannot rewrite the injected call, all
/// signals are blocked meanwhile, and PTRACE_SYSCALL runs the task from there to that call's entry
/// stop and on to its exit stop (no single-stepping: see <see cref="Tracee.ResumeToSyscallStop"/>).
/// The scratch area lies below the stack's 128-byte red zone, which no code of the task uses
/// while it is stopped; its previous bytes are saved and written back.
/// </summary>
public sealed class RemoteSyscall : IDisposable
{
    public const int ScratchSize = 4096;
    private const int RedZone = 128;

    private readonly Tracee _tracee;
    private readonly UserRegisters _saved;
    private readonly ulong _savedMask;
    private readonly byte[] _savedScratch;
    private readonly ulong _syscallAddress;
    private bool _disposed;

    private RemoteSyscall(Tracee tracee, ulong syscallAddress)
    {
        _tracee = tracee;
        _syscallAddress = syscallAddress;
        _saved = tracee.GetRegisters();
        _savedMask = tracee.GetSignalMask();
        Scratch = (_saved.Rsp - RedZone - ScratchSize) & ~63ul;
        _savedScratch = ProcessMemory.ReadExact(tracee.Pid, Scratch, ScratchSize);
        tracee.SetSignalMask(ulong.MaxValue);
    }

    /// <summary>Address of <see cref="ScratchSize"/> bytes of task memory usable for arguments.</summary>
    public ulong Scratch { get; }

    /// <summary>The registers the task had when injection began.</summary>
    public UserRegisters OriginalRegisters => _saved;

    public static RemoteSyscall Begin(Tracee tracee) => new(tracee, FindSyscallInstruction(tracee.Pid));

    /// <summary>Runs one system call; returns rax (negative errno on failure).</summary>
    public long CallRaw(long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        UserRegisters regs = _saved;
        regs.Rip = _syscallAddress;
        regs.Rax = (ulong)number;
        regs.OrigRax = ulong.MaxValue;
        (regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9) = (a1, a2, a3, a4, a5, a6);
        _tracee.SetRegisters(regs);
        _tracee.ResumeToSyscallStop($"entry of injected syscall {number}");
        _tracee.ResumeToSyscallStop($"exit of injected syscall {number}");
        UserRegisters after = _tracee.GetRegisters();
        if (after.Rip != _syscallAddress + 2)
            throw new InvalidOperationException($"task {_tracee.Pid}: injected syscall {number} stopped at 0x{after.Rip:x}, expected 0x{_syscallAddress + 2:x}");
        return (long)after.Rax;
    }

    /// <summary>Runs one system call and throws a <see cref="SyscallException"/> naming it on failure.</summary>
    public long Call(string name, long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        long result = CallRaw(number, a1, a2, a3, a4, a5, a6);
        if (result < 0 && result > -4096) throw new SyscallException(name, (int)-result, _tracee.Pid, "injected into the target");
        return result;
    }

    public void WriteScratch(int offset, ReadOnlySpan<byte> data) => ProcessMemory.Write(_tracee.Pid, Scratch + (ulong)offset, data);

    public byte[] ReadScratch(int offset, int length) => ProcessMemory.ReadExact(_tracee.Pid, Scratch + (ulong)offset, length);

    public T ReadScratch<T>(int offset) where T : unmanaged => MemoryMarshal.Read<T>(ReadScratch(offset, Marshal.SizeOf<T>()));

    /// <summary>Puts back scratch bytes, registers and signal mask.</summary>
    public void Dispose()
    {
        if (_disposed || !_tracee.Attached) return;
        _disposed = true;
        ProcessMemory.Write(_tracee.Pid, Scratch, _savedScratch);
        _tracee.SetRegisters(_saved);
        _tracee.SetSignalMask(_savedMask);
    }

    /// <summary>The first `syscall` instruction (0f 05) in the task's [vdso].</summary>
    public static ulong FindSyscallInstruction(int pid)
    {
        MapsEntry vdso = ProcMaps.Read(pid).FirstOrDefault(m => m.Name == "[vdso]")
            ?? throw new InvalidOperationException($"process {pid} has no [vdso] mapping to run system calls through");
        byte[] code = ProcessMemory.ReadExact(pid, vdso.Start, checked((int)(vdso.End - vdso.Start)));
        for (int i = 0; i + 1 < code.Length; i++)
        {
            if (code[i] == 0x0f && code[i + 1] == 0x05) return vdso.Start + (ulong)i;
        }
        throw new InvalidOperationException($"the [vdso] of process {pid} contains no syscall instruction");
    }
}
