using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>
/// The program a restore's new process executes instead of the image's executable, so that the
/// executable is never a privilege gate (docs/SECURITY.md): a sealed memfd holding a 190-byte
/// static ELF (one read+execute page at 0x10000 whose code is exit_group(127), a non-executable
/// stack). A memfd has no setuid or setgid bit and no file capabilities, so the exec changes no
/// credentials, whatever the engine holds and whatever the image names. The process never runs
/// it: it stops at PTRACE_EVENT_EXEC, the restore unmaps it with the rest of the exec's address
/// space, and PR_SET_MM_MAP makes the image's executable the process's exe link.
/// </summary>
public sealed unsafe partial class NeutralExecutable : IDisposable
{
    private const uint MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
    private const int F_ADD_SEALS = 1033, F_SEAL_SEAL = 1, F_SEAL_SHRINK = 2, F_SEAL_GROW = 4, F_SEAL_WRITE = 8;
    private const ulong LoadAddress = 0x10000;

    private readonly int fd;

    private NeutralExecutable(int fd) => (this.fd, Path) = (fd, $"/proc/{Environment.ProcessId}/fd/{fd}");

    /// <summary>What to execve: the engine's memfd through /proc, from any process the engine made
    /// (its forked child, or a child forked by injection in a restored process of a tree).</summary>
    public string Path { get; } = "";

    public static NeutralExecutable Create()
    {
        int fd = memfd_create("ckpt-restore", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) throw new SyscallException("memfd_create", Native.LastErrno, Environment.ProcessId, "the neutral program a restore executes");
        byte[] elf = Elf();
        fixed (byte* bytes = elf)
        {
            if (Native.pwrite(fd, bytes, (nuint)elf.Length, 0) != elf.Length
                || fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
            {
                int errno = Native.LastErrno;
                Native.close(fd);
                throw new SyscallException("memfd write/seal", errno, Environment.ProcessId, "the neutral program a restore executes");
            }
        }
        return new NeutralExecutable(fd);
    }

    public void Dispose() => Native.close(fd);

    // ELF64 header (64 bytes), two program headers (56 each), the code at 176.
    private static byte[] Elf()
    {
        ReadOnlySpan<byte> code = [0xbf, 0x7f, 0x00, 0x00, 0x00, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05]; // mov edi,127; mov eax,exit_group; syscall
        const int headers = 64 + 2 * 56;
        byte[] elf = new byte[headers + code.Length + 2];
        Span<byte> e = elf;
        "\x7f\x45\x4c\x46\x02\x01\x01"u8.CopyTo(e); // magic, ELFCLASS64, little endian, EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(e[16..], 2);       // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(e[18..], 62);      // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(e[20..], 1);       // EV_CURRENT
        BinaryPrimitives.WriteUInt64LittleEndian(e[24..], LoadAddress + headers); // entry
        BinaryPrimitives.WriteUInt64LittleEndian(e[32..], 64);      // program headers at 64
        BinaryPrimitives.WriteUInt16LittleEndian(e[52..], 64);      // header size
        BinaryPrimitives.WriteUInt16LittleEndian(e[54..], 56);      // program header size
        BinaryPrimitives.WriteUInt16LittleEndian(e[56..], 2);       // two of them
        BinaryPrimitives.WriteUInt16LittleEndian(e[58..], 64);      // section header size (none)
        ProgramHeader(e[64..], type: 1, flags: 5, address: LoadAddress, size: (ulong)elf.Length, align: 0x1000); // PT_LOAD R+X
        ProgramHeader(e[120..], type: 0x6474e551, flags: 6, address: 0, size: 0, align: 16);                  // PT_GNU_STACK RW
        code.CopyTo(e[headers..]);
        return elf;
    }

    private static void ProgramHeader(Span<byte> p, uint type, uint flags, ulong address, ulong size, ulong align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], 0);        // offset
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], address); // vaddr
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], address); // paddr
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], size);    // file size
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], size);    // memory size
        BinaryPrimitives.WriteUInt64LittleEndian(p[48..], align);
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int memfd_create(string name, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);
}
