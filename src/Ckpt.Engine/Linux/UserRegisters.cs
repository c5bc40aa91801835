using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>struct user_regs_struct (x86-64), as PTRACE_GETREGS/SETREGS move it.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UserRegisters
{
    public ulong R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8;
    public ulong Rax, Rcx, Rdx, Rsi, Rdi, OrigRax, Rip, Cs, Eflags, Rsp, Ss;
    public ulong FsBase, GsBase, Ds, Es, Fs, Gs;
}
