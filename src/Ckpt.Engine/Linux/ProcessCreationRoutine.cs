using System.Runtime.InteropServices;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Linux;

/// <summary>
/// The arguments of <see cref="ProcessCreationRoutine"/>, read by its machine code at fixed offsets.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SpawnArguments
{
    public CloneArgs* CloneArguments;   // 0
    public ulong CloneArgumentsSize;    // 8
    public long PipeReadFd;             // 16  the grandchild waits on it before execve
    public long PipeWriteFd;            // 24  closed in the grandchild so the engine's death gives EOF
    public byte* Path;                  // 32
    public byte** Argv;                 // 40
    public ulong Scratch;               // 48  the byte read from the pipe
    public ulong BlockAllSignals;       // 56  ~0
    public ulong SavedSignalMask;       // 64  the calling thread's mask, restored after fork
    public byte** Envp;                 // 72
}

/// <summary>struct clone_args (CLONE_ARGS_SIZE_VER2 = 88 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CloneArgs
{
    public ulong Flags, PidFd, ChildTid, ParentTid, ExitSignal, Stack, StackSize, Tls;
    public ulong SetTid, SetTidSize, Cgroup;
}

/// <summary>
/// A few instructions that fork without running any managed (or libc) code in the children.
/// The .NET runtime is multi-threaded: a forked copy of it may hold locks of threads that do
/// not exist there, so the children must only execute raw system calls. Called with a
/// <see cref="SpawnArguments"/>* it returns the intermediate child's pid, or -errno of vfork.
/// The intermediate is a vfork child: it shares the engine's memory (no copy of the engine's
/// address space is made and torn down for it; the calling thread waits until it exits) and
/// touches no memory, stack included: it only reads the arguments and makes two system calls.
/// The intermediate calls clone3 (with set_tid) and exits with 0 or clone3's errno; the
/// grandchild closes the pipe's write end, blocks in read() until the engine has attached,
/// then execve()s, or exit_group(127). All signals are blocked around fork so that no runtime
/// signal handler can run in a child; the grandchild keeps them blocked through execve (the
/// restore sets the recorded mask later).
/// </summary>
internal static unsafe class ProcessCreationRoutine
{
    // Assembled from the listing on the right (GNU as, Intel syntax); r8 holds the arguments.
    private static ReadOnlySpan<byte> Code =>
    [
        0x49, 0x89, 0xf8,                         // 00 mov r8, rdi
        0xbf, 0x02, 0x00, 0x00, 0x00,             // 03 mov edi, SIG_SETMASK
        0x49, 0x8d, 0x70, 0x38,                   // 08 lea rsi, [r8+56]   block all
        0x49, 0x8d, 0x50, 0x40,                   // 0c lea rdx, [r8+64]   save old mask
        0x41, 0xba, 0x08, 0x00, 0x00, 0x00,       // 10 mov r10d, 8
        0xb8, 0x0e, 0x00, 0x00, 0x00,             // 16 mov eax, rt_sigprocmask
        0x0f, 0x05,                               // 1b syscall
        0xb8, 0x3a, 0x00, 0x00, 0x00,             // 1d mov eax, vfork
        0x0f, 0x05,                               // 22 syscall
        0x48, 0x85, 0xc0,                         // 24 test rax, rax
        0x74, 0x1f,                               // 27 je intermediate (48)
        0x49, 0x89, 0xc1,                         // 29 mov r9, rax        parent: keep result
        0xbf, 0x02, 0x00, 0x00, 0x00,             // 2c mov edi, SIG_SETMASK
        0x49, 0x8d, 0x70, 0x40,                   // 31 lea rsi, [r8+64]   restore old mask
        0x31, 0xd2,                               // 35 xor edx, edx
        0x41, 0xba, 0x08, 0x00, 0x00, 0x00,       // 37 mov r10d, 8
        0xb8, 0x0e, 0x00, 0x00, 0x00,             // 3d mov eax, rt_sigprocmask
        0x0f, 0x05,                               // 42 syscall
        0x4c, 0x89, 0xc8,                         // 44 mov rax, r9
        0xc3,                                     // 47 ret
        0x49, 0x8b, 0x38,                         // 48 intermediate: mov rdi, [r8]
        0x49, 0x8b, 0x70, 0x08,                   // 4b mov rsi, [r8+8]
        0xb8, 0xb3, 0x01, 0x00, 0x00,             // 4f mov eax, clone3
        0x0f, 0x05,                               // 54 syscall
        0x48, 0x85, 0xc0,                         // 56 test rax, rax
        0x74, 0x11,                               // 59 je grandchild (6c)
        0x48, 0x89, 0xc7,                         // 5b mov rdi, rax
        0x48, 0xf7, 0xdf,                         // 5e neg rdi            errno if clone3 failed
        0x79, 0x02,                               // 61 jns exit_now (65)
        0x31, 0xff,                               // 63 xor edi, edi       success: status 0
        0xb8, 0xe7, 0x00, 0x00, 0x00,             // 65 exit_now: mov eax, exit_group
        0x0f, 0x05,                               // 6a syscall
        0x49, 0x8b, 0x78, 0x18,                   // 6c grandchild: mov rdi, [r8+24]
        0xb8, 0x03, 0x00, 0x00, 0x00,             // 70 mov eax, close
        0x0f, 0x05,                               // 75 syscall
        0x49, 0x8b, 0x78, 0x10,                   // 77 mov rdi, [r8+16]
        0x49, 0x8d, 0x70, 0x30,                   // 7b lea rsi, [r8+48]
        0xba, 0x01, 0x00, 0x00, 0x00,             // 7f mov edx, 1
        0x31, 0xc0,                               // 84 xor eax, eax       read
        0x0f, 0x05,                               // 86 syscall
        0x48, 0x83, 0xf8, 0x01,                   // 88 cmp rax, 1
        0x75, 0x13,                               // 8c jne die (a1)       engine gone: no exec
        0x49, 0x8b, 0x78, 0x20,                   // 8e mov rdi, [r8+32]
        0x49, 0x8b, 0x70, 0x28,                   // 92 mov rsi, [r8+40]
        0x49, 0x8b, 0x50, 0x48,                   // 96 mov rdx, [r8+72]
        0xb8, 0x3b, 0x00, 0x00, 0x00,             // 9a mov eax, execve
        0x0f, 0x05,                               // 9f syscall
        0xbf, 0x7f, 0x00, 0x00, 0x00,             // a1 die: mov edi, 127
        0xb8, 0xe7, 0x00, 0x00, 0x00,             // a6 mov eax, exit_group
        0x0f, 0x05,                               // ab syscall
    ];

    private static readonly Lazy<nint> Entry = new(MapCode);

    /// <summary>Runs the routine; returns the intermediate child's pid or -errno.</summary>
    public static long Run(SpawnArguments* arguments)
    {
        var routine = (delegate* unmanaged<SpawnArguments*, long>)Entry.Value;
        return routine(arguments);
    }

    // W^X: written while read-write, then made read-execute before it is ever called.
    private static nint MapCode()
    {
        const int PageSize = 4096;
        nint page = mmap(0, PageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == -1)
            throw new SyscallException("mmap", Marshal.GetLastPInvokeError(), Environment.ProcessId, "page for the process-creation routine");
        Code.CopyTo(new Span<byte>((void*)page, PageSize));
        if (mprotect(page, PageSize, PROT_READ | PROT_EXEC) != 0)
            throw new SyscallException("mprotect", Marshal.GetLastPInvokeError(), Environment.ProcessId, "page for the process-creation routine");
        return page;
    }
}
