using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Restore;

/// <summary>
/// One argument of a batched system call: a value, or the result of an earlier call of the same
/// batch (the descriptor an openat returned, for the mmap after it).
/// </summary>
public readonly record struct BatchArgument(ulong Value, int ResultOf)
{
    public static implicit operator BatchArgument(ulong value) => new(value, -1);

    /// <summary>The result of entry <paramref name="entry"/> (what <see cref="SyscallBatch.Add"/> returned).</summary>
    public static BatchArgument Result(int entry) => new(0, entry);
}

/// <summary>A restore step's name, for the calls of a batch that serves several steps; <paramref name="OfThread"/>: a step of each thread, not of the process.</summary>
public sealed record BatchStep(string Name, bool OfThread = false);

/// <summary>
/// System calls a restoring task makes one after the other without a ptrace stop between them. An
/// injected call costs two stops (entry and exit), each a round trip between the engine and the
/// task through the scheduler; a restore makes about a hundred and thirty per process, which is
/// most of a process tree's restore time. A batch writes its calls into the task's scratch area and
/// runs a small routine of the engine's there (<see cref="Routine"/>, in the page after the area, made
/// read-and-execute with the first batch and unmapped with the area) that makes each call
/// and stores its result, stopping at the first failure of a call that must succeed: one stop for
/// the whole batch. The failed call is then reported by its name as if it had been injected alone.
/// Only the restore uses it: a checkpoint never puts code of its own into the target.
/// </summary>
public sealed unsafe class SyscallBatch(SyscallInjector syscalls, ScratchArea scratch)
{
    private const int EntrySize = 80;
    // The batch area starts with the completion word (the routine's count of calls made, written at its
    // end) and 8 bytes of padding; the entries follow.
    private const int HeaderSize = 16;
    private const ulong NotCompleted = ulong.MaxValue;
    private const int Capacity = (int)((ScratchArea.BatchAreaSize - HeaderSize) / EntrySize);
    private const ulong PROT_READ = 1, PROT_EXEC = 4;

    /// <summary>Layout of one entry in the task, read by the routine.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Entry
    {
        public long Number;            //  0
        public fixed ulong Arguments[6]; //  8  rdi, rsi, rdx, r10, r8, r9
        public fixed byte ResultOf[6];   // 56  per argument: 0 = the value above, n = the result of entry n - 1
        public fixed byte Padding[2];
        public long Result;              // 64  rax after the call
        public long MayFail;             // 72  bit 0: go on after a failure of this call
    }

    private readonly record struct Call(string Name, long Number, BatchArgument[] Arguments, bool MayFail, BatchStep? Step);

    private readonly List<Call> _calls = [];

    public int Count => _calls.Count;

    /// <summary>
    /// The restore step the calls added from now on belong to, when one batch serves several (see
    /// <see cref="LateStateStage"/>): a failed call is then reported as a failure of its own step.
    /// </summary>
    public BatchStep? Step { get; set; }

    /// <summary>Adds a call that must succeed; returns its entry (for <see cref="BatchArgument.Result"/> and <see cref="Run"/>'s results).</summary>
    public int Add(string name, long number, params BatchArgument[] arguments) => Append(name, number, arguments, mayFail: false);

    /// <summary>Adds a call whose failure the caller reads from the results (the batch goes on).</summary>
    public int AddMayFail(string name, long number, params BatchArgument[] arguments) => Append(name, number, arguments, mayFail: true);

    private int Append(string name, long number, BatchArgument[] arguments, bool mayFail)
    {
        if (arguments.Length > 6) throw new ArgumentException($"{name}: a system call takes at most 6 arguments");
        foreach (BatchArgument argument in arguments)
        {
            if (argument.ResultOf >= _calls.Count) throw new ArgumentException($"{name}: uses the result of entry {argument.ResultOf}, which comes later");
        }
        _calls.Add(new Call(name, number, arguments, mayFail, Step));
        return _calls.Count - 1;
    }

    /// <summary>
    /// Runs every call added, in order, in as many rounds as the entry space needs, and forgets them;
    /// returns their results (negative errno for a failure of a call that may fail). A call that must
    /// succeed and fails throws a <see cref="SyscallException"/> naming it; the calls after it were not made.
    /// </summary>
    public long[] Run()
    {
        var results = new long[_calls.Count];
        try
        {
            if (_calls.Count == 0) return results;
            EnsureRoutine();
            for (int first = 0; first < _calls.Count; first += Capacity)
                RunRound(first, Math.Min(Capacity, _calls.Count - first), results);
            return results;
        }
        finally
        {
            _calls.Clear();
        }
    }

    private void RunRound(int first, int count, long[] results)
    {
        var entries = new Entry[count];
        for (int i = 0; i < count; i++)
        {
            Call call = _calls[first + i];
            entries[i].Number = call.Number;
            entries[i].MayFail = call.MayFail ? 1 : 0;
            for (int a = 0; a < call.Arguments.Length; a++)
            {
                BatchArgument argument = call.Arguments[a];
                if (argument.ResultOf < 0) entries[i].Arguments[a] = argument.Value;
                else if (argument.ResultOf < first) entries[i].Arguments[a] = (ulong)results[argument.ResultOf]; // made in an earlier round
                else entries[i].ResultOf[a] = (byte)(argument.ResultOf - first + 1);
            }
        }
        // The completion word starts as NotCompleted: whatever stops the task before the routine's end leaves it so.
        byte[] area = new byte[HeaderSize + count * EntrySize];
        BitConverter.TryWriteBytes(area.AsSpan(0, 8), NotCompleted);
        MemoryMarshal.AsBytes(entries.AsSpan()).CopyTo(area.AsSpan(HeaderSize));
        ProcessMemory.WriteWritable(syscalls.Pid, scratch.BatchArea, area);
        string what = $"a batch of {count} system calls ({_calls[first].Name}, ...)";
        int status = syscalls.RunCodeToTrap(scratch.CodeAddress, rbx: scratch.BatchArea + HeaderSize, r12: (ulong)count, r13: 0, what);
        // The results and the completion word in one read, without the registers: a SIGTRAP stop with the
        // word set is the routine's int3 (a trap anywhere before it would find the word untouched).
        byte[] written = ProcessMemory.ReadReadable(syscalls.Pid, scratch.BatchArea, HeaderSize + count * EntrySize);
        ulong made = BitConverter.ToUInt64(written, 0);
        if (made < 1 || made > (ulong)count) ThrowUnexpectedStop(status, made, count, what);
        for (int i = 0; i < (int)made; i++)
            results[first + i] = BitConverter.ToInt64(written, HeaderSize + i * EntrySize + 64);
        int last = first + (int)made - 1;
        if ((int)made < count || (IsFailure(results[last]) && !_calls[last].MayFail))
        {
            var failure = new SyscallException(_calls[last].Name, (int)-results[last], syscalls.Pid, "injected into the task");
            throw _calls[last].Step is { } step ? new StepFailedException(step.Name, failure, step.OfThread ? syscalls.Pid : null) : failure;
        }
    }

    private void ThrowUnexpectedStop(int status, ulong made, int count, string what)
    {
        ulong stoppedAt = syscalls.GetRegisters().Rip;
        string completion = made == NotCompleted ? "before the routine's end" : $"with {made} of {count} calls reported made";
        throw new InvalidOperationException($"task {syscalls.Pid}: {WaitStatus.Describe(status)} at 0x{stoppedAt:x} during {what}, {completion} "
            + $"(the routine ends at 0x{scratch.CodeAddress + (ulong)Routine.Length:x})");
    }

    private static bool IsFailure(long result) => result < 0 && result > -4096;

    /// <summary>
    /// Writes the routine into the scratch area's code page, then makes the page read-and-execute (never
    /// both); done by the first batch. Done early in a process that will fork others (TreeCreation), the
    /// children inherit it with the area and save the injected mprotect each.
    /// </summary>
    public void EnsureRoutine()
    {
        if (scratch.HasCode) return;
        ProcessMemory.Write(syscalls.Pid, scratch.CodeAddress, Routine);
        syscalls.Call("mprotect (batch routine)", SYS_mprotect, scratch.CodeAddress, ScratchArea.CodeSize, PROT_READ | PROT_EXEC);
        scratch.HasCode = true;
    }

    /// <summary>
    /// The routine, x86-64. In: rbx = the entries, r12 = their count, r13 = 0. For each entry: the
    /// arguments that take an earlier result are filled in, the call is made, rax is stored; a failure
    /// (rax in -4095..-1) of an entry without MayFail ends the loop. Out, at the int3: r13 = the
    /// number of calls made, also stored in the completion word 16 bytes before the entries. rbx, r12, r13 and r15 survive the syscall instruction (it clobbers rcx and r11).
    /// </summary>
    private static readonly byte[] Routine =
    [
        0x4d, 0x39, 0xe5,                         // 00 next:  cmp r13, r12
        0x73, 0x5d,                               // 03        jae done
        0x4d, 0x6b, 0xfd, 0x50,                   // 05        imul r15, r13, 80
        0x49, 0x01, 0xdf,                         // 09        add r15, rbx              ; r15 = this entry
        0x31, 0xc9,                               // 0c        xor ecx, ecx
        0x41, 0x0f, 0xb6, 0x44, 0x0f, 0x38,       // 0e subst: movzx eax, byte [r15 + rcx + 56]
        0x85, 0xc0,                               // 14        test eax, eax
        0x74, 0x10,                               // 16        je skip
        0xff, 0xc8,                               // 18        dec eax
        0x48, 0x6b, 0xc0, 0x50,                   // 1a        imul rax, rax, 80
        0x48, 0x8b, 0x44, 0x03, 0x40,             // 1e        mov rax, [rbx + rax + 64] ; that entry's result
        0x49, 0x89, 0x44, 0xcf, 0x08,             // 23        mov [r15 + rcx*8 + 8], rax
        0xff, 0xc1,                               // 28 skip:  inc ecx
        0x83, 0xf9, 0x06,                         // 2a        cmp ecx, 6
        0x72, 0xdf,                               // 2d        jb subst
        0x49, 0x8b, 0x07,                         // 2f        mov rax, [r15]
        0x49, 0x8b, 0x7f, 0x08,                   // 32        mov rdi, [r15 + 8]
        0x49, 0x8b, 0x77, 0x10,                   // 36        mov rsi, [r15 + 16]
        0x49, 0x8b, 0x57, 0x18,                   // 3a        mov rdx, [r15 + 24]
        0x4d, 0x8b, 0x57, 0x20,                   // 3e        mov r10, [r15 + 32]
        0x4d, 0x8b, 0x47, 0x28,                   // 42        mov r8, [r15 + 40]
        0x4d, 0x8b, 0x4f, 0x30,                   // 46        mov r9, [r15 + 48]
        0x0f, 0x05,                               // 4a        syscall
        0x49, 0x89, 0x47, 0x40,                   // 4c        mov [r15 + 64], rax
        0x49, 0xff, 0xc5,                         // 50        inc r13
        0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff,       // 53        cmp rax, -4095
        0x72, 0xa5,                               // 59        jb next                   ; success
        0x41, 0xf6, 0x47, 0x48, 0x01,             // 5b        test byte [r15 + 72], 1
        0x75, 0x9e,                               // 60        jne next                  ; may fail
        0x4c, 0x89, 0x6b, 0xf0,                   // 62 done:  mov [rbx - 16], r13       ; the completion word
        0xcc,                                     // 66        int3
    ];
}
