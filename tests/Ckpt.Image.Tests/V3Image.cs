using System.Buffers.Binary;
using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Image.Tests;

/// <summary>
/// Writes a valid format-3 image of one process with <see cref="Threads"/> tasks (the leader
/// <see cref="LeaderPid"/> and threads LeaderPid+1 ...), in the order docs/FORMAT.md fixes:
/// three VMAs with page chunks (a private file mapping, anonymous memory in two chunks, a shared
/// file mapping whose file a descriptor also uses), three descriptors, 64 handlers, a signal
/// state with two process-wide pending signals, per-thread pending signals (task i has i % 3) and
/// a restart block on task 1. Every value is a function of the task index, so tests can predict
/// it (<see cref="Tid"/>, <see cref="ThreadName"/>, ...). The hooks change one thing for a
/// hostile image; <see cref="Records"/> and <see cref="Patch{T}"/> change fields afterwards.
/// </summary>
internal sealed unsafe class V3Image
{
    public const int LeaderPid = 5000, Ppid = 1, Sid = 4990;
    public const int MmRef = 1, FileTableRef = 2, HandlersRef = 3, SignalRef = 4;
    public const int LibraryRef = 5, LogRef = 6, DevNullRef = 7;
    public const ulong ImageId = 0x0123_4567_89ab_cdef;
    public const uint PageSize = 4096;
    public const uint XstateLength = 64;
    public const string Cwd = "/home/v3", Root = "/", Exe = "/usr/bin/v3app";
    public const string LibraryPath = "/usr/lib/libv3.so", LogPath = "/var/log/v3.log", DevNullPath = "/dev/null";
    public const ulong LibraryStart = 0x5555_0000_0000, AnonStart = 0x7f00_0000_0000, LogStart = 0x7f10_0000_0000;
    public static readonly uint[] Groups = [100, 27];

    /// <summary>Tasks in the image: the leader and Threads - 1 threads.</summary>
    public int Threads { get; init; } = 3;

    public ushort FormatVersion { get; init; } = HeaderRecord.CurrentFormatVersion;

    /// <summary>
    /// Adds a second process, <see cref="ChildPid"/> (a child of the leader, last in the table), that
    /// shares the leader's descriptor table (clone with CLONE_FILES, not CLONE_THREAD) by an OBJREF
    /// and has its own mm (no VMAs), handlers (none) and signal state (objrefs 8, 9, 10).
    /// </summary>
    public bool SecondProcess { get; init; }

    public const int ChildPid = 6000, ChildMmRef = 8, ChildHandlersRef = 9, ChildSignalRef = 10, ChildFileTableRef = 11;

    /// <summary>With <see cref="SecondProcess"/>: the child has a descriptor table of its own (objref
    /// 11) of Count descriptors, written by Write, instead of the leader's.</summary>
    public (int Count, Action<ImageWriter> Write)? ChildDescriptors { get; init; }

    /// <summary>VMAs (with whatever records precede them) written after the leader's three, and the count they add.</summary>
    public (int Count, Action<ImageWriter> Write)? LeaderExtraVmas { get; init; }

    /// <summary>With <see cref="SecondProcess"/>: the child's VMAs (it has none otherwise).</summary>
    public (int Count, Action<ImageWriter> Write)? ChildVmas { get; init; }

    /// <summary>POSIX_TIMER records written after the leader's SIGNAL record and its queue.</summary>
    public PosixTimerRecord[] PosixTimers { get; init; } = [];

    /// <summary>Writes the leader's CONTROLLING_TERMINAL (after its POSIX timers) when set.</summary>
    public Action<ImageWriter>? ControllingTerminal { get; init; }

    /// <summary>Adds a zombie, <see cref="ZombiePid"/>, a child of the leader that exited with <see cref="ZombieStatus"/> (last in the table).</summary>
    public bool Zombie { get; init; }

    public const int ZombiePid = 6100, ZombieStatus = 7 << 8;

    public static TaskIdsRecord ZombieIds
    {
        get
        {
            var ids = new TaskIdsRecord { Pid = ZombiePid, Tgid = ZombiePid, Ppid = LeaderPid, Pgid = Sid, Sid = Sid, NamespaceLevels = 1 };
            ids.NamespacePids[0] = ZombiePid;
            return ids;
        }
    }

    /// <summary>A zombie's section: TASK (no threads) and ZOMBIE.</summary>
    public static void WriteZombieSection(ImageWriter writer)
    {
        writer.Write(new TaskRecord { Pid = ZombiePid, Tgid = ZombiePid, Ppid = LeaderPid, Pgid = Sid, Sid = Sid, ExitSignal = 17, ThreadCount = 0 });
        writer.Write(new ZombieRecord { Pid = ZombiePid, ExitStatus = ZombieStatus });
    }

    /// <summary>Written at the end of task <c>index</c>'s section (after its thread records): the optional tree-state records.</summary>
    public Action<ImageWriter, int>? TaskSectionEnd { get; init; }

    /// <summary>With <see cref="SecondProcess"/>: written at the end of the child's section.</summary>
    public Action<ImageWriter>? ChildSectionEnd { get; init; }

    /// <summary>Written right before TASK_OBJECTS in the leader's section (after GROUPINFO): an FS record or OBJREF.</summary>
    public Action<ImageWriter>? LeaderFs { get; init; }

    /// <summary>With <see cref="SecondProcess"/>: written right before TASK_OBJECTS in the child's section (after CREDENTIALS).</summary>
    public Action<ImageWriter>? ChildFs { get; init; }

    /// <summary>With <see cref="SecondProcess"/>: the leader's objects the child uses by OBJREF instead of its own (CLONE_VM, CLONE_SIGHAND; the signal state only a lie).</summary>
    public (bool Memory, bool Handlers, bool Signal) ChildShares { get; init; }

    /// <summary>With <see cref="SecondProcess"/>: the child's cwd and umask (its own fs information: /tmp, 0).</summary>
    public string ChildCwd { get; init; } = "/tmp";
    public uint ChildUmask { get; init; }

    /// <summary>Replaces the four OBJREF records a thread (task index > 0) writes after its TASK_OBJECTS.</summary>
    public Action<V3Image, ImageWriter, int>? ThreadObjects { get; init; }

    /// <summary>Replaces the leader's VMAs (Count of them, written by Write after the MM record).</summary>
    public (int Count, Action<ImageWriter> Write)? Vmas { get; init; }

    /// <summary>Records written after the leader's last VMA, inside its MM object (a MEMBARRIER record).</summary>
    public Action<ImageWriter>? MemoryTail { get; init; }

    /// <summary>Replaces the descriptor records of the file table (the FILE_TABLE record is written first).</summary>
    public Action<V3Image, ImageWriter>? Descriptors { get; init; }

    public static int Tid(int index) => LeaderPid + index;
    public static string ThreadName(int index) => index == 0 ? "v3app" : $"worker-{index}";
    public static int PendingCount(int index) => index % 3;
    public static ulong Rip(int index) => 0x40_1000ul + (ulong)index * 0x10;

    /// <summary>The bytes of a saved page: a pattern of its address.</summary>
    public static byte PageByte(ulong address, int offset) => (byte)((address >> 12) * 31 + (ulong)offset * 7 + 3);

    /// <summary>The anonymous VMA's saved pages, by chunk; page 1 was all zeros and left out.</summary>
    public static readonly ulong[][] AnonChunks = [[AnonStart], [AnonStart + 2 * PageSize, AnonStart + 3 * PageSize]];

    /// <summary>Signs the image (IMAGE_SIGNATURE before the tail) when set.</summary>
    public ImageSigningKey? SigningKey { get; init; }

    public byte[] Build()
    {
        using var output = new MemoryStream();
        using (var writer = new ImageWriter(output, leaveOpen: true, signingKey: SigningKey))
        {
            WriteHeader(writer);
            int extra = (SecondProcess ? 1 : 0) + (Zombie ? 1 : 0);
            writer.Write(new TreeRecord { TaskCount = Threads + extra, ProcessCount = 1 + extra });
            for (int i = 0; i < Threads; i++) writer.Write(TaskIds(i));
            if (SecondProcess) writer.Write(ChildIds);
            if (Zombie) writer.Write(ZombieIds);
            for (int i = 0; i < Threads; i++) WriteTaskSection(writer, i);
            if (SecondProcess)
            {
                WriteChildSection(writer, ChildDescriptors, ChildVmas, ChildCwd, ChildUmask, ChildFs, ChildShares);
                ChildSectionEnd?.Invoke(writer);
            }
            if (Zombie) WriteZombieSection(writer);
            writer.WriteTail();
        }
        return output.ToArray();
    }

    public static ImageModel Read(byte[] image, bool verifyChecksum = true) =>
        ImageModelReader.Read(new ImageReader(new MemoryStream(image), verifyChecksum: verifyChecksum));

    // ---- the parts, public so that a hook can write them where they do not belong ----

    public void WriteHeader(ImageWriter writer)
    {
        var header = new HeaderRecord
        {
            Magic = HeaderRecord.ExpectedMagic, FormatVersion = FormatVersion, LinuxCrNumbering = HeaderRecord.LinuxCrVersion,
            Arch = Architecture.X86_64, CreatedUnixNanoseconds = 1_763_856_000_000_000_000, ImageId = ImageId, ParentImageId = 0,
            PageSize = PageSize, TaskCommLength = 16, SignalCount = 64, RlimitCount = 16, AuxvWords = 64, UserRegsSize = 216,
        };
        RecordText.SetCString(header.KernelRelease, 65, "6.18.0-v3test");
        RecordText.SetCString(header.KernelVersion, 65, "#1 SMP");
        RecordText.SetCString(header.Machine, 65, "x86_64");
        writer.Write(header);
        writer.Write(new HeaderArchRecord { XFeatures = 0x2e7, XstateSize = XstateLength });
    }

    public static TaskIdsRecord TaskIds(int index)
    {
        var ids = new TaskIdsRecord { Pid = Tid(index), Tgid = LeaderPid, Ppid = Ppid, Pgid = LeaderPid, Sid = Sid, NamespaceLevels = 1 };
        ids.NamespacePids[0] = Tid(index);
        return ids;
    }

    public static TaskIdsRecord ChildIds
    {
        get
        {
            var ids = new TaskIdsRecord { Pid = ChildPid, Tgid = ChildPid, Ppid = LeaderPid, Pgid = LeaderPid, Sid = Sid, NamespaceLevels = 1 };
            ids.NamespacePids[0] = ChildPid;
            return ids;
        }
    }

    private static void WriteChildSection(ImageWriter writer, (int Count, Action<ImageWriter> Write)? descriptors, (int Count, Action<ImageWriter> Write)? vmas,
        string cwd, uint umask, Action<ImageWriter>? fs, (bool Memory, bool Handlers, bool Signal) shares)
    {
        var task = new TaskRecord { Pid = ChildPid, Tgid = ChildPid, Ppid = LeaderPid, Pgid = LeaderPid, Sid = Sid, ExitSignal = 17, ThreadCount = 1, Umask = umask };
        RecordText.SetCString(task.Comm, 16, "child");
        writer.Write(task);
        writer.WriteString(cwd);
        writer.WriteString(Root);
        writer.WriteString(Exe);
        writer.Write(new CredentialsRecord { Uid = 1000, Euid = 1000, Suid = 1000, Fsuid = 1000 });
        fs?.Invoke(writer);
        writer.Write(new TaskObjectsRecord
        {
            MmObjRef = shares.Memory ? MmRef : ChildMmRef, FileTableObjRef = descriptors is null ? FileTableRef : ChildFileTableRef,
            SignalHandlersObjRef = shares.Handlers ? HandlersRef : ChildHandlersRef, SignalObjRef = shares.Signal ? SignalRef : ChildSignalRef,
        });
        if (shares.Memory) writer.Write(new ObjrefRecord { ObjectType = ObjectType.Mm, ObjRef = MmRef });
        else
        {
            var mm = Mm(ChildMmRef);
            mm.VmaCount = vmas?.Count ?? 0;
            writer.Write(mm);
            vmas?.Write(writer);
        }
        if (descriptors is { } own)
        {
            writer.Write(new FileTableRecord { ObjRef = ChildFileTableRef, DescriptorCount = own.Count });
            own.Write(writer);
        }
        else writer.Write(new ObjrefRecord { ObjectType = ObjectType.FileTable, ObjRef = FileTableRef });
        if (shares.Handlers) writer.Write(new ObjrefRecord { ObjectType = ObjectType.SignalHandlers, ObjRef = HandlersRef });
        else WriteSignalHandlers(writer, ChildHandlersRef, 0);
        if (shares.Signal) writer.Write(new ObjrefRecord { ObjectType = ObjectType.Signal, ObjRef = SignalRef });
        else WriteSignal(writer, ChildSignalRef, 0);
        var thread = new ThreadRecord { Tid = ChildPid };
        RecordText.SetCString(thread.Comm, 16, "child");
        writer.Write(thread);
        writer.Write(new SignalStackRecord { Flags = 2 });
        writer.Write(new RseqRecord());
        writer.Write(new CpuRecord { Rip = 0x40_9000 });
        writer.Write(new CpuXstateRecord { XstateFeatures = 3, Length = XstateLength }, Xstate(99));
    }

    public TaskRecord Task(int index)
    {
        var task = new TaskRecord
        {
            Pid = Tid(index), Tgid = LeaderPid, Ppid = Ppid, Pgid = LeaderPid, Sid = Sid, ExitSignal = index == 0 ? 17 : -1,
            Personality = 0x0040_0000, Umask = 0x12, ThreadCount = Threads, StartTimeTicks = 1000ul + (ulong)index,
        };
        RecordText.SetCString(task.Comm, 16, ThreadName(index));
        return task;
    }

    public static TaskObjectsRecord Uses => new() { MmObjRef = MmRef, FileTableObjRef = FileTableRef, SignalHandlersObjRef = HandlersRef, SignalObjRef = SignalRef };

    private void WriteTaskSection(ImageWriter writer, int index)
    {
        writer.Write(Task(index));
        if (index == 0)
        {
            writer.WriteString(Cwd);
            writer.WriteString(Root);
            writer.WriteString(Exe);
            writer.Write(Credentials);
            byte[] groups = new byte[Groups.Length * sizeof(uint)];
            for (int g = 0; g < Groups.Length; g++) BinaryPrimitives.WriteUInt32LittleEndian(groups.AsSpan(g * 4), Groups[g]);
            writer.Write(new GroupInfoRecord { GroupCount = Groups.Length, ByteLength = (uint)groups.Length }, groups);
            LeaderFs?.Invoke(writer);
        }
        writer.Write(Uses);
        if (index == 0)
        {
            WriteMemory(writer, MmRef);
            WriteFileTable(writer, FileTableRef);
            WriteSignalHandlers(writer, HandlersRef, 64);
            WriteSignal(writer, SignalRef, 2);
            foreach (PosixTimerRecord timer in PosixTimers) writer.Write(timer);
            ControllingTerminal?.Invoke(writer);
        }
        else if (ThreadObjects is { } hook) hook(this, writer, index);
        else WriteObjrefs(writer);
        WriteThread(writer, index);
        TaskSectionEnd?.Invoke(writer, index);
    }

    public static void WriteObjrefs(ImageWriter writer)
    {
        writer.Write(new ObjrefRecord { ObjectType = ObjectType.Mm, ObjRef = MmRef });
        writer.Write(new ObjrefRecord { ObjectType = ObjectType.FileTable, ObjRef = FileTableRef });
        writer.Write(new ObjrefRecord { ObjectType = ObjectType.SignalHandlers, ObjRef = HandlersRef });
        writer.Write(new ObjrefRecord { ObjectType = ObjectType.Signal, ObjRef = SignalRef });
    }

    public static CredentialsRecord Credentials => new()
    {
        Uid = 1000, Euid = 1001, Suid = 1002, Fsuid = 1003, Gid = 100, Egid = 101, Sgid = 102, Fsgid = 103,
        CapInheritable = 1, CapPermitted = 2, CapEffective = 4, CapBounding = 0x1ff_ffff_ffff, CapAmbient = 8,
        SecureBits = 0x2f, GroupCount = Groups.Length,
    };

    public static MmRecord Mm(int objRef)
    {
        var mm = new MmRecord
        {
            ObjRef = objRef, VmaCount = 3, StartCode = LibraryStart, EndCode = LibraryStart + 0x1000, StartData = 0x5555_0001_0000,
            EndData = 0x5555_0001_1000, StartBrk = 0x5555_0002_0000, Brk = 0x5555_0002_4000, StartStack = 0x7ffd_0000_f000,
            ArgStart = 0x7ffd_0000_f100, ArgEnd = 0x7ffd_0000_f180, EnvStart = 0x7ffd_0000_f180, EnvEnd = 0x7ffd_0000_f400, AuxvWords = 4,
        };
        mm.SavedAuxv[0] = 6; // AT_PAGESZ
        mm.SavedAuxv[1] = PageSize;
        return mm;
    }

    public void WriteMemory(ImageWriter writer, int objRef)
    {
        if (Vmas is { } vmas)
        {
            var explicitMm = Mm(objRef);
            explicitMm.VmaCount = vmas.Count;
            writer.Write(explicitMm);
            vmas.Write(writer);
            MemoryTail?.Invoke(writer);
            return;
        }
        var mm = Mm(objRef);
        mm.VmaCount += LeaderExtraVmas?.Count ?? 0;
        writer.Write(mm);
        // A private file mapping: its FILE on first use, one page.
        WriteFile(writer, LibraryRef, FileKind.Regular, LibraryPath);
        writer.Write(new VmaRecord
        {
            VmStart = LibraryStart, VmEnd = LibraryStart + 0x2000, VmPgoff = 0, VmFlags = 0x875, VmaType = VmaType.File,
            Protection = 5, FileObjRef = LibraryRef, PagesPopulated = 1,
        });
        WritePages(writer, [LibraryStart]);
        writer.WritePageArrayEnd();
        // Anonymous memory, 4 pages, populated 4 by the page map, page 1 all zeros and left out.
        writer.Write(new VmaRecord { VmStart = AnonStart, VmEnd = AnonStart + 4 * PageSize, VmFlags = 0x100073, VmaType = VmaType.Anon, Protection = 3, PagesPopulated = 4 });
        foreach (ulong[] chunk in AnonChunks) WritePages(writer, chunk);
        writer.WritePageArrayEnd();
        // A shared file mapping of the file descriptor 3 also has open: by reference, no pages.
        WriteFile(writer, LogRef, FileKind.Regular, LogPath);
        writer.Write(new VmaRecord { VmStart = LogStart, VmEnd = LogStart + PageSize, VmPgoff = 2, VmFlags = 0xfb, VmaType = VmaType.SharedFile, Protection = 3, FileObjRef = LogRef });
        writer.WritePageArrayEnd();
        LeaderExtraVmas?.Write(writer);
        MemoryTail?.Invoke(writer);
    }

    public static void WritePages(ImageWriter writer, ulong[] addresses)
    {
        byte[] contents = new byte[addresses.Length * PageSize];
        for (int p = 0; p < addresses.Length; p++)
            for (int b = 0; b < PageSize; b++) contents[p * PageSize + b] = PageByte(addresses[p], b);
        writer.WritePageArray(addresses, contents);
    }

    public static void WriteFile(ImageWriter writer, int objRef, FileKind kind, string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        writer.Write(new FileRecord
        {
            ObjRef = objRef, Kind = kind, OpenFlags = 0x8002, Mode = kind == FileKind.CharacterDevice ? 0x21b6u : 0x81a4u,
            Position = objRef * 100, Device = 0x803, Inode = 4000ul + (ulong)objRef, RawDevice = kind == FileKind.CharacterDevice ? 0x103ul : 0,
            FileSize = objRef * 1000, MtimeNanoseconds = 1_700_000_000_000_000_000 + objRef, PathLength = (uint)bytes.Length,
        }, bytes);
    }

    /// <summary>fd 3: the log (FILE already written by its mapping), fd 4: /dev/null (FILE here), fd 5: the library again.</summary>
    public void WriteFileTable(ImageWriter writer, int objRef)
    {
        writer.Write(new FileTableRecord { ObjRef = objRef, DescriptorCount = 3 });
        if (Descriptors is { } hook)
        {
            hook(this, writer);
            return;
        }
        writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = LogRef, CloseOnExec = 1 });
        WriteFile(writer, DevNullRef, FileKind.CharacterDevice, DevNullPath);
        writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = DevNullRef });
        writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = LibraryRef });
    }

    public static SignalActionRecord Action(int signal) => new()
    {
        Signal = signal, Handler = signal % 3 == 0 ? 0 : 0x40_2000ul + (ulong)signal, Flags = 0x0400_0000ul | (ulong)signal,
        Restorer = 0x7f20_0000_0000, Mask = 1ul << (signal - 1),
    };

    public static void WriteSignalHandlers(ImageWriter writer, int objRef, int count)
    {
        writer.Write(new SignalHandlersRecord { ObjRef = objRef, ActionCount = count });
        for (int s = 1; s <= count; s++) writer.Write(Action(s));
    }

    public static SignalRecord Signal(int objRef, int pendingCount)
    {
        var signal = new SignalRecord
        {
            RealTimerValueNs = 500_000_000, RealTimerIntervalNs = 250_000_000, VirtualTimerValueNs = 3, VirtualTimerIntervalNs = 4,
            ProfTimerValueNs = 5, ProfTimerIntervalNs = 6, PendingCount = pendingCount, ObjRef = objRef,
        };
        for (int r = 0; r < 16; r++)
        {
            signal.RlimitCurrent[r] = 1000ul + (ulong)r;
            signal.RlimitMaximum[r] = r == 7 ? ulong.MaxValue : 2000ul + (ulong)r;
        }
        return signal;
    }

    public static readonly int[] SharedSignals = [10, 34]; // SIGUSR1, SIGRTMIN

    public static void WriteSignal(ImageWriter writer, int objRef, int pendingCount)
    {
        writer.Write(Signal(objRef, pendingCount));
        for (int p = 0; p < pendingCount; p++) writer.Write(Pending(SharedSignals[p % SharedSignals.Length], shared: true, p));
    }

    public static SignalPendingRecord Pending(int signal, bool shared, int sequence)
    {
        var pending = new SignalPendingRecord { Signal = signal, Shared = shared ? 1 : 0 };
        for (int b = 0; b < 128; b++) pending.Siginfo[b] = (byte)(signal + sequence * 3 + b);
        pending.Siginfo[0] = (byte)signal; // si_signo
        return pending;
    }

    /// <summary>Thread-directed signals of task i: SIGUSR2 (12), then SIGRTMIN+1 (35).</summary>
    public static int ThreadSignal(int sequence) => sequence == 0 ? 12 : 35;

    public static ThreadRecord Thread(int index)
    {
        var thread = new ThreadRecord
        {
            Tid = Tid(index), SyscallState = index == 1 ? SyscallState.RestartBlock : SyscallState.Restart,
            SyscallNumber = index == 1 ? 230 : 202, SyscallResult = index == 1 ? -516 : -512,
            BlockedSignals = 0x1000ul << index, ClearChildTid = 0x7f30_0000_0000ul + (ulong)index * 0x100,
            RobustListHead = 0x7f30_0000_0020ul + (ulong)index * 0x100, RobustListLength = 24,
            SchedulingPolicy = index == 2 ? 3 : 0, SchedulingPriority = 0, Nice = index == 2 ? 10 : 0, PendingCount = PendingCount(index),
        };
        RecordText.SetCString(thread.Comm, 16, ThreadName(index));
        return thread;
    }

    public static RestartBlockRecord RestartBlock
    {
        get
        {
            var block = new RestartBlockRecord { Function = RestartFunction.Nanosleep, SyscallNumber = 230 };
            block.Arguments[0] = 1_500_000_000;
            block.Arguments[1] = 1; // CLOCK_MONOTONIC
            return block;
        }
    }

    public static byte[] Xstate(int index) => Enumerable.Range(0, (int)XstateLength).Select(b => (byte)(b + index * 5)).ToArray();

    public void WriteThread(ImageWriter writer, int index)
    {
        writer.Write(Thread(index));
        if (index == 1) writer.Write(RestartBlock);
        writer.Write(new SignalStackRecord { StackPointer = 0x7f40_0000_0000ul + (ulong)index * 0x10000, StackSize = 0x8000, Flags = index == 0 ? 2 : 0 });
        writer.Write(new RseqRecord { Address = 0x7f50_0000_0000ul + (ulong)index * 0x20, Length = 32, Signature = 0x53053053, Flags = 0 });
        writer.Write(new CpuRecord { Rip = Rip(index), Rsp = 0x7ffd_0000_0000ul - (ulong)index * 0x10000, Rax = (ulong)index, OrigRax = 202, FsBase = 0x7f60_0000_0000ul + (ulong)index, Cs = 0x33, Ss = 0x2b, Eflags = 0x246 });
        writer.Write(new CpuXstateRecord { XstateFeatures = 0x7, Length = XstateLength }, Xstate(index));
        for (int p = 0; p < PendingCount(index); p++) writer.Write(Pending(ThreadSignal(p), shared: false, p));
    }

    // ---- finding and changing records of a built image ----

    /// <summary>Every record of an image: its type, offset and length.</summary>
    public static List<(RecordType Type, int Offset, int Length)> Records(byte[] image)
    {
        var records = new List<(RecordType, int, int)>();
        for (int offset = 0; offset + 8 <= image.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset + 4));
            records.Add(((RecordType)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset)), offset, length));
            offset += length;
        }
        return records;
    }

    /// <summary>Offset of the <paramref name="nth"/> (from 0) record of <paramref name="type"/>.</summary>
    public static int OffsetOf(byte[] image, RecordType type, int nth = 0) =>
        Records(image).Where(r => r.Type == type).Select(r => r.Offset).ElementAt(nth);

    /// <summary>Changes fields of the nth record of T in place (its length stays); returns its offset.</summary>
    public static int Patch<T>(byte[] image, int nth, Func<T, T> change) where T : struct, IImageRecord<T>
    {
        int offset = OffsetOf(image, T.RecordType, nth);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset + 4));
        T changed = change(T.ReadFrom(image.AsSpan(offset, T.FixedSize)));
        byte[] fixedPart = new byte[T.FixedSize];
        changed.WriteTo(fixedPart, length);
        fixedPart.CopyTo(image, offset);
        return offset;
    }
}
