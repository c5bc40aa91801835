using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A small real checkpoint of a single-threaded process (ptrace interrupt, /proc, pagemap,
/// injected rt_sigaction/sigaltstack/getitimer), written with ImageWriter in the documented
/// order, so the restore tests have images while `ckpt checkpoint` (issue 3) is not on main.
/// It leaves the process stopped and traced; the caller kills it.
/// </summary>
internal static unsafe partial class RestoreTestCheckpoint
{
    private const int PTRACE_GETREGS = 12, PTRACE_SEIZE = 0x4206, PTRACE_INTERRUPT = 0x4207, PTRACE_GETREGSET = 0x4204,
        PTRACE_GETSIGMASK = 0x420a, PTRACE_GET_RSEQ_CONFIGURATION = 0x420f, NT_X86_XSTATE = 0x202;
    private const long SYS_rt_sigaction = 13, SYS_getitimer = 36, SYS_sigaltstack = 131, SYS_nanosleep = 35, SYS_clock_nanosleep = 230;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long ptrace(long request, int pid, nint address, nint data);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    /// <summary>Stops the process (it stays stopped and traced by the calling thread) and writes its image.</summary>
    /// <param name="kernelRelease">written instead of this kernel's release (refusal tests)</param>
    /// <param name="architecture">written instead of x86-64 (refusal tests)</param>
    public static void Checkpoint(int pid, string imagePath, string? kernelRelease = null, uint? architecture = null)
    {
        Check(ptrace(PTRACE_SEIZE, pid, 0, 0x100000 | 1 /* EXITKILL, TRACESYSGOOD */), "PTRACE_SEIZE", pid);
        Check(ptrace(PTRACE_INTERRUPT, pid, 0, 0), "PTRACE_INTERRUPT", pid);
        int status;
        waitpid(pid, &status, 0x40000000);
        UserRegisters regs;
        Check(ptrace(PTRACE_GETREGS, pid, 0, (nint)(&regs)), "PTRACE_GETREGS", pid);
        byte[] xstate = ReadXstate(pid);

        using var output = File.Create(imagePath);
        using var writer = new ImageWriter(output);
        WriteHeader(writer, xstate, kernelRelease, architecture);
        writer.Write(new TreeRecord { TaskCount = 1 });
        WriteTask(writer, pid);
        var syscalls = InjectedSyscalls.ForInterruptedTask(pid);
        var scratch = ScratchArea.Map(syscalls, []);
        var vmas = MapsLine.ReadAll(pid).Where(m => m.Start != scratch.Address).ToList();
        RestoreTestMemoryCapture.Write(writer, pid, vmas, (ulong)syscalls.CallRaw(12 /* brk(0): the current break */));
        WriteFiles(writer, pid);
        WriteSignals(writer, pid, syscalls, scratch);
        WriteThread(writer, pid, regs, xstate, syscalls, scratch);
        scratch.Unmap();
        syscalls.SetRegisters(regs);
        writer.WriteTail();
    }

    private static byte[] ReadXstate(int pid)
    {
        byte[] buffer = new byte[64 * 1024];
        fixed (byte* b = buffer)
        {
            nint* iov = stackalloc nint[2];
            iov[0] = (nint)b;
            iov[1] = buffer.Length;
            Check(ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, (nint)iov), "GETREGSET", pid);
            return buffer.AsSpan(0, (int)iov[1]).ToArray();
        }
    }

    private static void WriteHeader(ImageWriter writer, byte[] xstate, string? kernelRelease, uint? architecture)
    {
        var header = new HeaderRecord
        {
            Magic = HeaderRecord.ExpectedMagic, FormatVersion = HeaderRecord.CurrentFormatVersion,
            LinuxCrNumbering = HeaderRecord.LinuxCrVersion, Arch = (Ckpt.Image.Records.Architecture)(architecture ?? 62), PageSize = 4096,
            TaskCommLength = 16, SignalCount = 64, RlimitCount = 16, AuxvWords = MmRecord.AuxvCapacity, UserRegsSize = 216,
        };
        Fill(header.KernelRelease, 65, kernelRelease ?? File.ReadAllText("/proc/sys/kernel/osrelease").Trim());
        Fill(header.Machine, 65, "x86_64");
        writer.Write(header);
        writer.Write(new HeaderArchRecord { XFeatures = BitConverter.ToUInt64(xstate, 464), XstateSize = (uint)xstate.Length });
    }

    private static void WriteTask(ImageWriter writer, int pid)
    {
        var status = Status(pid);
        var task = new TaskRecord
        {
            Pid = pid, Tgid = pid, Umask = Convert.ToUInt32(status["Umask"], 8), ThreadCount = 1,
            Personality = uint.Parse(File.ReadAllText($"/proc/{pid}/personality").Trim(), NumberStyles.HexNumber),
        };
        Fill(task.Comm, 16, File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n'));
        writer.Write(task);
        writer.WriteString(new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget!);
        writer.WriteString(new DirectoryInfo($"/proc/{pid}/root").LinkTarget!);
        writer.WriteString(new FileInfo($"/proc/{pid}/exe").LinkTarget!);
        uint[] ids(string key) => status[key].Split('\t', StringSplitOptions.RemoveEmptyEntries).Select(uint.Parse).ToArray();
        ulong cap(string key) => ulong.Parse(status[key], NumberStyles.HexNumber);
        uint[] uid = ids("Uid"), gid = ids("Gid");
        uint[] groups = status["Groups"].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(uint.Parse).ToArray();
        writer.Write(new CredentialsRecord
        {
            Uid = uid[0], Euid = uid[1], Suid = uid[2], Fsuid = uid[3], Gid = gid[0], Egid = gid[1], Sgid = gid[2], Fsgid = gid[3],
            CapInheritable = cap("CapInh"), CapPermitted = cap("CapPrm"), CapEffective = cap("CapEff"),
            CapBounding = cap("CapBnd"), CapAmbient = cap("CapAmb"), GroupCount = groups.Length,
        });
        if (groups.Length > 0)
            writer.Write(new GroupInfoRecord { GroupCount = groups.Length, ByteLength = (uint)groups.Length * 4 }, MemoryMarshal.AsBytes(groups.AsSpan()));
        writer.Write(new TaskObjectsRecord { MmObjRef = 1, FileTableObjRef = 2, SignalHandlersObjRef = 3 });
    }

    private static void WriteFiles(ImageWriter writer, int pid)
    {
        var fds = Directory.GetFiles($"/proc/{pid}/fd").Select(f => int.Parse(Path.GetFileName(f))).Order().ToList();
        writer.Write(new FileTableRecord { ObjRef = 2, DescriptorCount = fds.Count });
        int objRef = 1000;
        foreach (int fd in fds)
        {
            string path = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget!;
            var info = File.ReadAllLines($"/proc/{pid}/fdinfo/{fd}").Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => p[1].Trim());
            uint flags = Convert.ToUInt32(info["flags"], 8);
            var identity = FileIdentity.Of(path);
            FileKind kind = identity is null ? FileKind.Other : (identity.Value.Mode & 0xF000) switch
            {
                0x8000 => FileKind.Regular, 0x4000 => FileKind.Directory, 0x2000 => FileKind.CharacterDevice,
                0x6000 => FileKind.BlockDevice, 0x1000 => FileKind.Pipe, 0xC000 => FileKind.Socket, _ => FileKind.Other,
            };
            var record = new FileRecord
            {
                ObjRef = ++objRef, Kind = kind, OpenFlags = flags, Position = long.Parse(info["pos"]), Mode = identity?.Mode ?? 0,
                Device = identity?.Device ?? 0, Inode = identity?.Inode ?? 0, FileSize = identity?.Size ?? 0,
                MtimeNanoseconds = identity?.MtimeNanoseconds ?? 0, PathLength = (uint)Encoding.UTF8.GetByteCount(path),
            };
            writer.Write(record, Encoding.UTF8.GetBytes(path));
            writer.Write(new FileDescriptorRecord { Fd = fd, FileObjRef = objRef, CloseOnExec = (flags & 0x80000) != 0 ? 1 : 0 });
        }
    }

    private static void WriteSignals(ImageWriter writer, int pid, InjectedSyscalls syscalls, ScratchArea scratch)
    {
        writer.Write(new SignalHandlersRecord { ObjRef = 3, ActionCount = 64 });
        for (int signal = 1; signal <= 64; signal++)
        {
            scratch.Reset();
            ulong old = scratch.Reserve(32);
            long result = syscalls.CallRaw(SYS_rt_sigaction, (ulong)signal, 0, old, 8);
            byte[] action = result == 0 ? TaskMemory.Read(pid, old, 32) : new byte[32];
            writer.Write(new SignalActionRecord
            {
                Signal = signal, Handler = BitConverter.ToUInt64(action, 0), Flags = BitConverter.ToUInt64(action, 8),
                Restorer = BitConverter.ToUInt64(action, 16), Mask = BitConverter.ToUInt64(action, 24),
            });
        }
        var record = new SignalRecord();
        var limits = File.ReadAllLines($"/proc/{pid}/limits").Skip(1).ToList();
        for (int i = 0; i < 16; i++)
        {
            string[] columns = limits[i][26..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            record.RlimitCurrent[i] = columns[0] == "unlimited" ? ulong.MaxValue : ulong.Parse(columns[0]);
            record.RlimitMaximum[i] = columns[1] == "unlimited" ? ulong.MaxValue : ulong.Parse(columns[1]);
        }
        scratch.Reset();
        ulong timer = scratch.Reserve(32);
        syscalls.Call("getitimer", SYS_getitimer, 0, timer);
        byte[] real = TaskMemory.Read(pid, timer, 32);
        record.RealTimerIntervalNs = BitConverter.ToInt64(real, 0) * 1_000_000_000 + BitConverter.ToInt64(real, 8) * 1000;
        record.RealTimerValueNs = BitConverter.ToInt64(real, 16) * 1_000_000_000 + BitConverter.ToInt64(real, 24) * 1000;
        writer.Write(record);
    }

    private static void WriteThread(ImageWriter writer, int pid, UserRegisters regs, byte[] xstate, InjectedSyscalls syscalls, ScratchArea scratch)
    {
        ulong mask;
        Check(ptrace(PTRACE_GETSIGMASK, pid, 8, (nint)(&mask)), "GETSIGMASK", pid);
        long result = (long)regs.Rax;
        SyscallState state = (long)regs.OrigRax < 0 ? SyscallState.NotInSyscall : result switch
        {
            -512 or -513 or -514 => SyscallState.Restart,
            -516 => SyscallState.RestartBlock,
            _ => SyscallState.NotInSyscall,
        };
        writer.Write(new ThreadRecord { Tid = pid, SyscallState = state, SyscallNumber = (long)regs.OrigRax, SyscallResult = result, BlockedSignals = mask });
        if (state == SyscallState.RestartBlock)
            writer.Write(RestartBlock(pid, regs));
        scratch.Reset();
        ulong old = scratch.Reserve(24);
        syscalls.Call("sigaltstack", SYS_sigaltstack, 0, old);
        byte[] stack = TaskMemory.Read(pid, old, 24);
        writer.Write(new SignalStackRecord { StackPointer = BitConverter.ToUInt64(stack, 0), Flags = BitConverter.ToInt32(stack, 8), StackSize = BitConverter.ToUInt64(stack, 16) });
        ulong* rseq = stackalloc ulong[3];
        Check(ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, 24, (nint)rseq), "GET_RSEQ_CONFIGURATION", pid);
        writer.Write(new RseqRecord { Address = rseq[0], Length = (uint)rseq[1], Signature = (uint)(rseq[1] >> 32), Flags = (uint)rseq[2] });
        writer.Write(MemoryMarshal.Cast<UserRegisters, CpuRecord>(new ReadOnlySpan<UserRegisters>(in regs))[0]);
        writer.Write(new CpuXstateRecord { XstateFeatures = BitConverter.ToUInt64(xstate, 512), Length = (uint)xstate.Length }, xstate);
    }

    // The kernel wrote the time left into the rem buffer when the sleep was interrupted.
    private static RestartBlockRecord RestartBlock(int pid, UserRegisters regs)
    {
        var block = new RestartBlockRecord { SyscallNumber = (long)regs.OrigRax, Function = RestartFunction.Other };
        ulong rem = regs.OrigRax == SYS_nanosleep ? regs.Rsi : regs.OrigRax == SYS_clock_nanosleep && regs.Rsi == 0 ? regs.R10 : 0;
        if (rem == 0) return block;
        byte[] timespec = TaskMemory.Read(pid, rem, 16);
        block.Function = RestartFunction.Nanosleep;
        block.Arguments[0] = (ulong)(BitConverter.ToInt64(timespec, 0) * 1_000_000_000 + BitConverter.ToInt64(timespec, 8));
        block.Arguments[1] = regs.OrigRax == SYS_clock_nanosleep ? regs.Rdi : 1;
        return block;
    }

    internal static Dictionary<string, string> Status(int pid) =>
        File.ReadAllLines($"/proc/{pid}/status").Select(l => l.Split(':', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());

    private static void Fill(byte* destination, int capacity, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        for (int i = 0; i < Math.Min(bytes.Length, capacity - 1); i++) destination[i] = bytes[i];
    }

    private static void Check(long result, string what, int pid)
    {
        if (result < 0) throw new SyscallException(what, Marshal.GetLastPInvokeError(), pid);
    }
}
