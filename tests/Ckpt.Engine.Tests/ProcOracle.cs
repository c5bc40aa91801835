using System.Globalization;
using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>
/// What the kernel says about a process, read by the tests themselves (not through the engine's
/// parsers or its Tracee): /proc/PID/smaps and pagemap, /proc/PID/fd + fdinfo, and its
/// registers and xsave area through a ptrace attach of our own.
/// </summary>
internal static unsafe partial class ProcOracle
{
    private const int PTRACE_GETREGS = 12, PTRACE_DETACH = 17, PTRACE_GETREGSET = 0x4204, PTRACE_SEIZE = 0x4206,
        PTRACE_INTERRUPT = 0x4207, NT_X86_XSTATE = 0x202, WALL = 0x40000000, PTRACE_EVENT_STOP = 128;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long ptrace(long request, int pid, nint address, nint data);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint address, nuint length);

    public sealed record Mapping(ulong Start, ulong End, string Permissions, ulong Offset, ulong Inode, string Name, string[] VmFlags)
    {
        public bool Private => Permissions[3] == 'p';
        public uint Protection => (Permissions[0] == 'r' ? 1u : 0) | (Permissions[1] == 'w' ? 2u : 0) | (Permissions[2] == 'x' ? 4u : 0);
    }

    /// <summary>Every VMA of /proc/PID/smaps with its VmFlags mnemonics.</summary>
    public static List<Mapping> Smaps(int pid)
    {
        var result = new List<Mapping>();
        Mapping? current = null;
        foreach (string line in File.ReadAllLines($"/proc/{pid}/smaps"))
        {
            if (line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                result.Add(current! with { VmFlags = line[8..].Split(' ', StringSplitOptions.RemoveEmptyEntries) });
                continue;
            }
            string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 5 || !fields[0].Contains('-') || fields[0].EndsWith(':')) continue;
            string[] range = fields[0].Split('-');
            current = new Mapping(Hex(range[0]), Hex(range[1]), fields[1], Hex(fields[2]), ulong.Parse(fields[4], CultureInfo.InvariantCulture),
                fields.Length == 6 ? fields[5].Trim() : "", []);
        }
        return result;
    }

    /// <summary>pagemap entries (bit 63 present, 62 swapped, 61 file page or shared anon, 0-54 PFN) of [start, end).</summary>
    public static ulong[] Pagemap(int pid, ulong start, ulong end)
    {
        ulong pages = (end - start) / 4096;
        byte[] bytes = new byte[checked((int)pages * 8)];
        using var pagemap = File.OpenHandle($"/proc/{pid}/pagemap");
        int done = 0;
        while (done < bytes.Length)
        {
            int n = RandomAccess.Read(pagemap, bytes.AsSpan(done), (long)(start / 4096 * 8) + done);
            if (n <= 0) throw new IOException($"short read of /proc/{pid}/pagemap at 0x{start:x}");
            done += n;
        }
        return MemoryMarshal.Cast<byte, ulong>(bytes).ToArray();
    }

    public const ulong Present = 1ul << 63, Swapped = 1ul << 62, FilePage = 1ul << 61, PfnMask = (1ul << 55) - 1;

    /// <summary>The PFN of the kernel's shared zero page: what a read fault of untouched anonymous memory maps (root sees PFNs).</summary>
    public static ulong ZeroPagePfn()
    {
        const int PROT_READ = 1, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
        nint page = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == -1) throw new InvalidOperationException($"mmap: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            _ = System.Threading.Volatile.Read(ref *(byte*)page); // a read fault maps the zero page
            return Pagemap(Environment.ProcessId, (ulong)page, (ulong)page + 4096)[0] & PfnMask;
        }
        finally
        {
            munmap(page, 4096);
        }
    }

    public sealed record Descriptor(int Fd, string Path, long Position, uint Flags);

    /// <summary>/proc/PID/fd links with fdinfo's pos and flags (octal, O_CLOEXEC included).</summary>
    public static List<Descriptor> Descriptors(int pid) =>
        Directory.GetFileSystemEntries($"/proc/{pid}/fd") /* directory fds too */.Select(p => int.Parse(Path.GetFileName(p), CultureInfo.InvariantCulture)).Order().Select(fd =>
        {
            string[] info = File.ReadAllLines($"/proc/{pid}/fdinfo/{fd}");
            long position = long.Parse(info.First(l => l.StartsWith("pos:"))[4..].Trim(), CultureInfo.InvariantCulture);
            uint flags = Convert.ToUInt32(info.First(l => l.StartsWith("flags:"))[6..].Trim(), 8);
            return new Descriptor(fd, new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget!, position, flags);
        }).ToList();

    /// <summary>user_regs_struct (27 words, kernel order) and the NT_X86_XSTATE area of a task, read while it is briefly stopped.</summary>
    /// <summary>
    /// The live registers and xsave area, read by a short-lived tracer thread that lets the process
    /// go as the engine does (Tasks/SyscallReentry: a plain PTRACE_DETACH would make a pause() leave
    /// and re-enter the call from user space, where the test's next signal could be lost).
    /// </summary>
    public static (ulong[] Registers, byte[] Xstate) Registers(int pid)
    {
        (ulong[], byte[])? result = null;
        Exception? failure = null;
        var tracer = new Thread(() =>
        {
            try { result = ReadRegistersAndRelease(pid); }
            catch (Exception e) { failure = e; }
        });
        tracer.Start();
        tracer.Join();
        Ckpt.Engine.Linux.TracerExit.WaitUntilDetached([pid]);
        if (failure is not null) throw failure;
        return result!.Value;
    }

    private static (ulong[] Registers, byte[] Xstate) ReadRegistersAndRelease(int pid)
    {
        // PTRACE_O_TRACESYSGOOD: the release tells its syscall stop from a SIGTRAP by it.
        if (ptrace(PTRACE_SEIZE, pid, 0, Ckpt.Engine.Linux.Tracee.PTRACE_O_TRACESYSGOOD) != 0) throw new InvalidOperationException($"ptrace(PTRACE_SEIZE, {pid}): errno {Marshal.GetLastPInvokeError()}");
        var tracee = Ckpt.Engine.Linux.Tracee.Adopt(pid);
        try
        {
            if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) throw new InvalidOperationException($"ptrace(PTRACE_INTERRUPT, {pid}): errno {Marshal.GetLastPInvokeError()}");
            int status;
            if (waitpid(pid, &status, WALL) != pid || (status >> 16) != PTRACE_EVENT_STOP)
                throw new InvalidOperationException($"process {pid} did not reach the interrupt stop (status 0x{status:x})");
            ulong[] registers = new ulong[27];
            fixed (ulong* regs = registers)
                if (ptrace(PTRACE_GETREGS, pid, 0, (nint)regs) != 0) throw new InvalidOperationException($"PTRACE_GETREGS: errno {Marshal.GetLastPInvokeError()}");
            byte[] buffer = new byte[64 * 1024];
            fixed (byte* bytes = buffer)
            {
                nint* iov = stackalloc nint[2];
                iov[0] = (nint)bytes;
                iov[1] = buffer.Length;
                if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, (nint)iov) != 0) throw new InvalidOperationException($"PTRACE_GETREGSET: errno {Marshal.GetLastPInvokeError()}");
                return (registers, buffer[..(int)iov[1]]);
            }
        }
        finally
        {
            try { Ckpt.Engine.Tasks.SyscallReentry.ReleaseAsStopped(tracee); }
            catch (Exception) { ptrace(PTRACE_DETACH, pid, 0, 0); }
        }
    }

    private static ulong Hex(string text) => ulong.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
