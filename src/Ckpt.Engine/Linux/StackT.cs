using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>The kernel's stack_t (x86-64), as sigaltstack(2) reads and writes it on both sides.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct StackT
{
    public ulong Pointer;
    public int Flags;
    public int Padding;
    public ulong Size;
}
