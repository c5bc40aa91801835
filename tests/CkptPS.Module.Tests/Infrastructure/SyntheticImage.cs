using System.Text;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace CkptPS.Module.Tests.Infrastructure;

/// <summary>
/// Writes a complete image of one process with ImageWriter, in the v3 order docs/FORMAT.md
/// fixes (and Checkpointer.WriteImage writes), with known contents: Get-CkptImage's output can then
/// be checked field by field. (Images of real processes come from the engine in EndToEndTests.)
/// With several threads, the leader's section holds the shared objects and every other thread's
/// section refers to them with OBJREF records.
/// </summary>
internal static unsafe class SyntheticImage
{
    public const int Pid = 4242, Ppid = 1, Uid = 1000, Gid = 100;
    public const string Comm = "synthetic", Exe = "/usr/bin/synthetic";
    public const ulong CodeStart = 0x5555_5555_4000, HeapStart = 0x5555_5556_0000, StackStart = 0x7ffd_0000_0000;
    public const ulong AnonStart = 0x7f00_0000_0000, SharedStart = 0x7f00_0050_0000, VdsoStart = 0x7fff_f7fc_0000;
    public const int AnonVmaCount = 3; // heap, anon mmap, stack
    public const uint PageSize = 4096;
    private const int MmObjRef = 1, FileTableObjRef = 2, SignalHandlersObjRef = 3, SignalObjRef = 4;

    /// <summary>Pages the 4 MiB anonymous mapping can hold.</summary>
    public const uint AnonMmapCapacity = 0x40_0000 / PageSize;

    /// <summary>The threads an image with <c>threads: 3</c> has, leader first (the first <c>threads</c> of them are written).</summary>
    public static readonly int[] ThreadTids = [Pid, Pid + 1, Pid + 7];
    public static readonly string[] ThreadNames = [Comm, "worker-1", "sleeper"];

    /// <summary>Thread 2 (worker-1): in futex, re-run on restore, SIGUSR1 (10) blocked, nice 5.</summary>
    public const ulong WorkerBlocked = 1UL << 9;

    /// <summary>Thread 3 (sleeper): in clock_nanosleep with a restart block, an alternate stack and one SIGUSR2 queued for it.</summary>
    public const ulong SleeperAltStack = 0x7f00_0100_0000;

    /// <summary>
    /// Writes the image; <paramref name="failAfterMm"/> makes it an image of a failed checkpoint instead.
    /// <paramref name="anonMmapPages"/> (up to <see cref="AnonMmapCapacity"/>) sets how many pages of
    /// the anonymous mapping are saved, for images with megabytes of page contents.
    /// <paramref name="threads"/> (1 to 3) is how many of <see cref="ThreadTids"/> the process has.
    /// </summary>
    public static string Write(string directory, string name = "synthetic.ckpt", bool failAfterMm = false, uint anonMmapPages = 1, int threads = 1)
    {
        if (threads < 1 || threads > ThreadTids.Length) throw new ArgumentOutOfRangeException(nameof(threads));
        string path = Path.Combine(directory, name);
        using var stream = File.Create(path);
        using var writer = new ImageWriter(stream, leaveOpen: false);
        WriteHeader(writer);
        writer.Write(new TreeRecord { TaskCount = threads, ProcessCount = 1 });
        for (int i = 0; i < threads; i++) writer.Write(TaskIds(ThreadTids[i]));

        var uses = new TaskObjectsRecord { MmObjRef = MmObjRef, FileTableObjRef = FileTableObjRef, SignalHandlersObjRef = SignalHandlersObjRef, SignalObjRef = SignalObjRef };
        WriteLeader(writer, threads);
        writer.Write(uses);
        WriteMemory(writer, anonMmapPages);
        if (failAfterMm)
        {
            writer.WriteError(13, "reading /proc/4242/fdinfo/3: Permission denied");
            writer.WriteTail();
            return path;
        }
        WriteFiles(writer);
        WriteSignals(writer);
        WriteThread(writer, 0);

        for (int i = 1; i < threads; i++)
        {
            writer.Write(Task(ThreadTids[i], ThreadNames[i], threads));
            writer.Write(uses);
            writer.Write(new ObjrefRecord { ObjectType = ObjectType.Mm, ObjRef = MmObjRef });
            writer.Write(new ObjrefRecord { ObjectType = ObjectType.FileTable, ObjRef = FileTableObjRef });
            writer.Write(new ObjrefRecord { ObjectType = ObjectType.SignalHandlers, ObjRef = SignalHandlersObjRef });
            writer.Write(new ObjrefRecord { ObjectType = ObjectType.Signal, ObjRef = SignalObjRef });
            WriteThread(writer, i);
        }
        writer.WriteTail();
        return path;
    }

    private static void WriteHeader(ImageWriter writer)
    {
        var header = new HeaderRecord
        {
            Magic = HeaderRecord.ExpectedMagic, FormatVersion = HeaderRecord.CurrentFormatVersion,
            LinuxCrNumbering = HeaderRecord.LinuxCrVersion, Arch = Architecture.X86_64,
            CreatedUnixNanoseconds = 1_763_856_000_000_000_000, PageSize = PageSize, TaskCommLength = 16,
            SignalCount = 64, RlimitCount = 16, AuxvWords = 64, UserRegsSize = 216, ImageId = 0x5eed_1234_5678_9abc,
        };
        Copy("6.18.0-synthetic", header.KernelRelease, 65);
        Copy("#1 SMP", header.KernelVersion, 65);
        Copy("x86_64", header.Machine, 65);
        writer.Write(header);
        writer.Write(new HeaderArchRecord { XFeatures = 0x2e7, XstateSize = 2696 });
    }

    private static TaskIdsRecord TaskIds(int tid)
    {
        var ids = new TaskIdsRecord { Pid = tid, Tgid = Pid, Ppid = Ppid, Pgid = Pid, Sid = Pid, NamespaceLevels = 1 };
        ids.NamespacePids[0] = tid;
        return ids;
    }

    private static TaskRecord Task(int tid, string comm, int threads)
    {
        var task = new TaskRecord { Pid = tid, Tgid = Pid, Ppid = Ppid, Pgid = Pid, Sid = Pid, ExitSignal = tid == Pid ? 17 : -1, Umask = 0x12, ThreadCount = threads };
        Copy(comm, task.Comm, 16);
        return task;
    }

    private static void WriteLeader(ImageWriter writer, int threads)
    {
        writer.Write(Task(Pid, Comm, threads));
        writer.WriteString("/home/synthetic");
        writer.WriteString("/");
        writer.WriteString(Exe);
        writer.Write(new CredentialsRecord { Uid = Uid, Euid = Uid, Suid = Uid, Fsuid = Uid, Gid = Gid, Egid = Gid, Sgid = Gid, Fsgid = Gid, CapBounding = 0x1ff_ffff_ffff });
    }

    private static void WriteMemory(ImageWriter writer, uint anonMmapPages)
    {
        writer.Write(new MmRecord
        {
            ObjRef = MmObjRef, VmaCount = 6, StartCode = CodeStart, EndCode = CodeStart + 0x2000,
            StartBrk = HeapStart, Brk = HeapStart + 0x21000, StartStack = StackStart + 0x1e000,
        });
        // r-xp text of the executable: by reference, nothing saved
        WriteFile(writer, 10, FileKind.Regular, Exe, openFlags: 0x8000, mode: 0x81ed, position: 0);
        WriteVma(writer, CodeStart, CodeStart + 0x2000, VmaType.File, 5, 0x75, fileObjRef: 10, pgoff: 4);
        WriteVma(writer, HeapStart, HeapStart + 0x21000, VmaType.Anon, 3, 0x100073, pages: 2);
        WriteVma(writer, AnonStart, AnonStart + 0x40_0000, VmaType.Anon, 3, 0x100073, pages: anonMmapPages);
        writer.Write(new SharedMemoryRecord { ObjRef = 11, SizePages = 1, Inode = 4242 });
        WriteVma(writer, SharedStart, SharedStart + 0x1000, VmaType.SharedAnon, 3, 0xfb, pages: 1, sharedObjRef: 11);
        WriteVma(writer, StackStart, StackStart + 0x21000, VmaType.Anon, 3, 0x100173, pages: 3);
        WriteVma(writer, VdsoStart, VdsoStart + 0x2000, VmaType.Vdso, 5, 0x8040075);
    }

    private static void WriteVma(ImageWriter writer, ulong start, ulong end, VmaType type, uint protection, ulong flags,
        int fileObjRef = 0, ulong pgoff = 0, uint pages = 0, int sharedObjRef = 0)
    {
        writer.Write(new VmaRecord
        {
            VmStart = start, VmEnd = end, VmPgoff = pgoff, VmFlags = flags, VmaType = type, Protection = protection,
            FileObjRef = fileObjRef, SharedMemoryObjRef = sharedObjRef, PagesPopulated = pages,
        });
        if (pages > 0)
        {
            var addresses = Enumerable.Range(0, (int)pages).Select(i => start + (ulong)i * PageSize).ToArray();
            var contents = new byte[pages * PageSize];
            for (int i = 0; i < contents.Length; i++) contents[i] = (byte)(i * 7 + (int)(start >> 12));
            writer.WritePageArray(addresses, contents);
        }
        writer.WritePageArrayEnd();
    }

    private static void WriteFiles(ImageWriter writer)
    {
        writer.Write(new FileTableRecord { ObjRef = FileTableObjRef, DescriptorCount = 3 });
        WriteFile(writer, 20, FileKind.CharacterDevice, "/dev/null", openFlags: 0x8000, mode: 0x21b6, position: 0);
        writer.Write(new FileDescriptorRecord { Fd = 0, FileObjRef = 20 });
        WriteFile(writer, 21, FileKind.Regular, "/tmp/synthetic.log", openFlags: 0x8401, mode: 0x81a4, position: 1234);
        writer.Write(new FileDescriptorRecord { Fd = 1, FileObjRef = 21 });
        writer.Write(new FileDescriptorRecord { Fd = 2, FileObjRef = 21 });
    }

    private static void WriteFile(ImageWriter writer, int objRef, FileKind kind, string path, uint openFlags, uint mode, long position)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        writer.Write(new FileRecord
        {
            ObjRef = objRef, Kind = kind, OpenFlags = openFlags, Mode = mode, Position = position,
            Device = 0x801, Inode = (ulong)(1000 + objRef), FileSize = 4096, MtimeNanoseconds = 1_700_000_000_000_000_000,
            PathLength = (uint)bytes.Length,
        }, bytes);
    }

    private static void WriteSignals(ImageWriter writer)
    {
        writer.Write(new SignalHandlersRecord { ObjRef = SignalHandlersObjRef, ActionCount = 64 });
        for (int signal = 1; signal <= 64; signal++) writer.Write(new SignalActionRecord { Signal = signal });
        writer.Write(new SignalRecord { ObjRef = SignalObjRef, PendingCount = 0 });
    }

    /// <summary>THREAD, [RESTART_BLOCK], SIGNAL_STACK, RSEQ, CPU, CPU_XSTATE, SIGNAL_PENDING x PendingCount.</summary>
    private static void WriteThread(ImageWriter writer, int index)
    {
        var thread = index switch
        {
            0 => new ThreadRecord { Tid = Pid, SyscallState = SyscallState.NotInSyscall, SyscallNumber = -1 },
            1 => new ThreadRecord { Tid = ThreadTids[1], SyscallState = SyscallState.Restart, SyscallNumber = 202, SyscallResult = -512, BlockedSignals = WorkerBlocked, Nice = 5 },
            _ => new ThreadRecord { Tid = ThreadTids[2], SyscallState = SyscallState.RestartBlock, SyscallNumber = 230, SyscallResult = -516, PendingCount = 1 },
        };
        Copy(ThreadNames[index], thread.Comm, 16);
        writer.Write(thread);
        if (index == 2)
        {
            var block = new RestartBlockRecord { Function = RestartFunction.Nanosleep, SyscallNumber = 230 };
            block.Arguments[0] = 5_000_000_000;
            writer.Write(block);
        }
        writer.Write(index == 2 ? new SignalStackRecord { StackPointer = SleeperAltStack, StackSize = 8192 } : new SignalStackRecord { Flags = 2 });
        writer.Write(new RseqRecord());
        writer.Write(new CpuRecord { Rip = CodeStart + 0x100 + (ulong)index * 0x10, Rsp = StackStart + 0x20000, Cs = 0x33, Ss = 0x2b });
        var xstate = new byte[2696];
        writer.Write(new CpuXstateRecord { XstateFeatures = 0x3, Length = (uint)xstate.Length }, xstate);
        if (index == 2)
        {
            var pending = new SignalPendingRecord { Signal = 12, Shared = 0 };
            pending.Siginfo[0] = 12;
            writer.Write(pending);
        }
    }

    private static void Copy(string text, byte* destination, int capacity)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        for (int i = 0; i < Math.Min(bytes.Length, capacity - 1); i++) destination[i] = bytes[i];
    }
}
