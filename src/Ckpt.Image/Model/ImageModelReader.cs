using System.Runtime.InteropServices;
using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// Reads a whole image into an <see cref="ImageModel"/>: the only code that knows the record order
/// (docs/FORMAT.md, "Image order"). Page contents are skipped (seeked over when the reader
/// does not verify the checksum). Every count, range, objref and task id is checked before it is
/// trusted; a problem is an <see cref="ImageFormatException"/> naming the record and its offset,
/// an image of a failed checkpoint a <see cref="FailedCheckpointException"/>.
/// </summary>
public static partial class ImageModelReader
{
    // Lists sized by a count from the image start at most this big and grow as records really come.
    private const int InitialCapacity = 256;

    public static ImageModel Read(ImageReader reader)
    {
        HeaderRecord header = reader.ReadHeader();
        var arch = Next<HeaderArchRecord>(reader);
        var tree = Next<TreeRecord>(reader);
        long treeOffset = reader.CurrentRecordOffset;
        if (tree.TaskCount < 1 || tree.TaskCount > ImageLimits.MaxTasks || tree.ProcessCount < 1 || tree.ProcessCount > tree.TaskCount)
            throw Error(reader, RecordType.Tree, $"{tree.TaskCount} tasks in {tree.ProcessCount} processes is not a valid tree (at most {ImageLimits.MaxTasks} tasks)");
        List<TaskIdsRecord> table = ReadTaskTable(reader, tree, treeOffset);

        var objects = new ObjectTable();
        var processes = new Dictionary<int, ProcessBuilder>();
        var zombies = new List<ZombieImage>();
        foreach (TaskIdsRecord ids in table)
        {
            var task = Next<TaskRecord>(reader);
            // A zombie's section is its TASK (a leader without threads) and its ZOMBIE record.
            if (task.ThreadCount == 0 && ids.Pid == ids.Tgid) zombies.Add(ReadZombieSection(reader, ids, task));
            else ReadTaskSection(reader, ids, task, objects, processes);
        }

        reader.ThrowIfFailedCheckpoint();
        (ImageSignatureRecord? signature, long signatureOffset) = ReadSignature(reader);
        if (reader.PeekType() is { } next && next != RecordType.Tail)
            throw Error(reader, next, "found after the last task section, where the signature or the tail belongs");
        List<ProcessImage> built = processes.Values.Select(p => p.Build()).ToList();
        RequireBothPipeEnds(built);
        SharedFsReader.RequireSharers(built);
        TerminalReader.CheckTree(built);
        SocketImageReader.CheckTree(built);
        TailRecord tail = reader.ReadTail();
        return new ImageModel
        {
            Header = header, Arch = arch, Tree = tree, TaskTable = table, Tail = tail, TailOffset = reader.CurrentRecordOffset,
            Signature = signature, SignatureOffset = signatureOffset,
            Processes = built, Zombies = zombies,
            RecordCount = reader.RecordCount - 1, Bytes = reader.Position, // the tail is not counted
        };
    }

    // An optional IMAGE_SIGNATURE right before the tail; an algorithm this reader does not know is refused.
    private static (ImageSignatureRecord?, long) ReadSignature(ImageReader reader)
    {
        if (reader.PeekType() != RecordType.ImageSignature) return (null, 0);
        var signature = Next<ImageSignatureRecord>(reader);
        long offset = reader.CurrentRecordOffset;
        if (signature.Algorithm != ImageSignatureRecord.HmacSha256)
            throw Error(reader, RecordType.ImageSignature, $"signature algorithm {signature.Algorithm} is unknown (1 is HMAC-SHA256)");
        return (signature, offset);
    }

    // ---- the task table ----

    private static List<TaskIdsRecord> ReadTaskTable(ImageReader reader, TreeRecord tree, long treeOffset)
    {
        var table = new List<TaskIdsRecord>(Math.Min(tree.TaskCount, InitialCapacity));
        var tasks = new Dictionary<int, TaskIdsRecord>();
        int leaders = 0;
        for (int i = 0; i < tree.TaskCount; i++)
        {
            reader.ThrowIfFailedCheckpoint();
            if (reader.PeekType() is { } other && other != RecordType.TaskIds)
                throw Error(reader, other, $"found where entry {i + 1} of the task table belongs: the TREE record says {tree.TaskCount} tasks, the table has {i}");
            var ids = Next<TaskIdsRecord>(reader);
            if (ids.Pid <= 0 || ids.Tgid <= 0 || ids.Ppid < 0 || ids.Pgid < 0 || ids.Sid < 0)
                throw Error(reader, RecordType.TaskIds, $"task {ids.Pid} (tgid {ids.Tgid}, ppid {ids.Ppid}, pgid {ids.Pgid}, sid {ids.Sid}) has an invalid id");
            if (!tasks.TryAdd(ids.Pid, ids))
                throw Error(reader, RecordType.TaskIds, $"task {ids.Pid} appears twice in the task table");
            if (ids.NamespaceLevels != 1 || NamespacePid(ids, 0) != ids.Pid)
                throw Error(reader, RecordType.TaskIds, $"task {ids.Pid} has {ids.NamespaceLevels} pid namespace levels: nested pid namespaces are not supported");
            if (ids.Pid == ids.Tgid)
            {
                leaders++;
                // The tree order: the root first, every other process after its parent.
                if (i > 0 && !(tasks.TryGetValue(ids.Ppid, out var parent) && parent.Pid == parent.Tgid && parent.Pid != ids.Pid))
                    throw Error(reader, RecordType.TaskIds, $"process {ids.Pid} has parent {ids.Ppid}, which is not a process earlier in the task table (the root comes first, every other process after its parent)");
            }
            else if (!tasks.TryGetValue(ids.Tgid, out var leader) || leader.Tgid != ids.Tgid)
                throw Error(reader, RecordType.TaskIds, $"thread {ids.Pid} of thread group {ids.Tgid}, whose leader does not come before it in the task table");
            table.Add(ids);
        }
        if (reader.PeekType() == RecordType.TaskIds)
            throw Error(reader, RecordType.TaskIds, $"the task table has more entries than the {tree.TaskCount} tasks the TREE record says");
        if (leaders != tree.ProcessCount)
            throw new ImageFormatException(RecordType.Tree, treeOffset, $"says {tree.ProcessCount} processes, the task table has {leaders} thread group leaders");
        return table;
    }

    private static unsafe int NamespacePid(TaskIdsRecord ids, int level) => ids.NamespacePids[level];

    // ---- one task's section ----

    /// <summary>The rest of a zombie's section after its TASK record: the ZOMBIE record.</summary>
    private static ZombieImage ReadZombieSection(ImageReader reader, TaskIdsRecord ids, TaskRecord task)
    {
        if (task.Pid != ids.Pid || task.Tgid != ids.Tgid || task.Ppid != ids.Ppid || task.Pgid != ids.Pgid || task.Sid != ids.Sid)
            throw Error(reader, RecordType.Task, $"zombie section of task {task.Pid} (tgid {task.Tgid}, ppid {task.Ppid}, pgid {task.Pgid}, sid {task.Sid}) where the task table has task {ids.Pid} (ppid {ids.Ppid}, pgid {ids.Pgid}, sid {ids.Sid})");
        var zombie = Next<ZombieRecord>(reader);
        if (zombie.Pid != task.Pid)
            throw Error(reader, RecordType.Zombie, $"zombie {zombie.Pid} in the section of task {task.Pid}");
        if ((zombie.ExitStatus & ~0xff7f) != 0 || ((zombie.ExitStatus & 0x7f) != 0 && (zombie.ExitStatus & 0xff00) != 0) || (zombie.ExitStatus & 0x7f) == 0x7f)
            throw Error(reader, RecordType.Zombie, $"zombie {zombie.Pid} has exit status 0x{zombie.ExitStatus:x}, which is neither an exit code nor a terminating signal");
        return new ZombieImage(task, zombie.ExitStatus);
    }

    private static void ReadTaskSection(ImageReader reader, TaskIdsRecord ids, TaskRecord task, ObjectTable objects, Dictionary<int, ProcessBuilder> processes)
    {
        if (task.Pid != ids.Pid || task.Tgid != ids.Tgid)
            throw Error(reader, RecordType.Task, $"section of task {task.Pid} (tgid {task.Tgid}) where the task table has task {ids.Pid} (tgid {ids.Tgid})");
        if (task.Dumpable is < 0 or > 3 || task.NoNewPrivileges is not (0 or 1))
            throw Error(reader, RecordType.Task, $"task {task.Pid} has dumpable {task.Dumpable} (0..3) and no_new_privs {task.NoNewPrivileges} (0 or 1)");

        ProcessBuilder process;
        if (task.Pid == task.Tgid)
        {
            process = new ProcessBuilder { Task = task };
            process.Cwd = NextString(reader);
            process.Root = NextString(reader);
            process.ExePath = NextString(reader);
            process.Credentials = Next<CredentialsRecord>(reader);
            process.Groups = ReadGroups(reader, process.Credentials);
            process.SharedFs = SharedFsReader.Read(reader, task, process.Cwd, process.Root, objects);
            processes.Add(task.Pid, process);
        }
        else
        {
            process = processes[task.Tgid]; // the task table put the leader first, and sections follow its order
        }

        var uses = Next<TaskObjectsRecord>(reader);
        long usesOffset = reader.CurrentRecordOffset;
        foreach (var (type, objRef) in new[] { (ObjectType.Mm, uses.MmObjRef), (ObjectType.FileTable, uses.FileTableObjRef), (ObjectType.SignalHandlers, uses.SignalHandlersObjRef), (ObjectType.Signal, uses.SignalObjRef) })
            if (objRef <= 0) throw Error(reader, RecordType.TaskObjects, $"{type} objref {objRef} is not valid");
        MemoryImage? parentMemory = processes.TryGetValue(task.Ppid, out ProcessBuilder? parent) && task.Pid == task.Tgid ? parent.Memory : null;
        var memory = objects.Use(reader, ObjectType.Mm, uses.MmObjRef, () => ReadMemory(reader, uses.MmObjRef, objects, task.Pid, parentMemory));
        var fileTable = objects.Use(reader, ObjectType.FileTable, uses.FileTableObjRef, () => ReadFileTable(reader, uses.FileTableObjRef, objects));
        var handlers = objects.Use(reader, ObjectType.SignalHandlers, uses.SignalHandlersObjRef, () => ReadSignalHandlers(reader, uses.SignalHandlersObjRef));
        var signal = objects.Use(reader, ObjectType.Signal, uses.SignalObjRef, () => ReadSignal(reader, uses.SignalObjRef));
        if (task.Pid == task.Tgid) CheckSharedWithEarlierProcesses(processes.Values, task.Pid, memory, handlers, signal, usesOffset);
        process.Share(memory, fileTable, handlers, signal, task.Pid, usesOffset);

        process.Threads.Add(ReadThread(reader, task));
        ReadTreeState(reader, task, process, isRoot: processes.Keys.First() == task.Tgid);
    }

    private static uint[] ReadGroups(ImageReader reader, CredentialsRecord credentials)
    {
        if (credentials.GroupCount == 0) return [];
        if (credentials.GroupCount < 0 || credentials.GroupCount > 65536)
            throw Error(reader, RecordType.Credentials, $"{credentials.GroupCount} supplementary groups");
        var info = Next<GroupInfoRecord>(reader);
        if (info.GroupCount != credentials.GroupCount || info.ByteLength != (uint)info.GroupCount * sizeof(uint))
            throw Error(reader, RecordType.GroupInfo, $"{info.GroupCount} groups in {info.ByteLength} bytes, the credentials say {credentials.GroupCount}");
        return MemoryMarshal.Cast<byte, uint>(reader.ReadTrailingBytes()).ToArray();
    }

    // ---- memory ----

    private static MemoryImage ReadMemory(ImageReader reader, int objRef, ObjectTable objects, int pid, MemoryImage? parentMemory)
    {
        var mm = Next<MmRecord>(reader);
        if (mm.ObjRef != objRef)
            throw Error(reader, RecordType.Mm, $"has objref {mm.ObjRef}, TASK_OBJECTS announced {objRef}");
        if (mm.VmaCount < 0 || mm.VmaCount > ImageLimits.MaxVmas || mm.AuxvWords > MmRecord.AuxvCapacity)
            throw Error(reader, RecordType.Mm, $"{mm.VmaCount} VMAs, {mm.AuxvWords} auxv words");
        var vmas = new List<VmaImage>(Math.Min(mm.VmaCount, InitialCapacity));
        ulong previousEnd = 0;
        for (int i = 0; i < mm.VmaCount; i++)
        {
            ReadFileIfFirstUse(reader, objects);
            int newSharedMemory = SharedMemoryReader.ReadIfFirstUse(reader, objects);
            var vma = Next<VmaRecord>(reader);
            if (vma.VmEnd <= vma.VmStart || vma.VmStart < previousEnd || vma.VmStart % reader.PageSize != 0 || vma.VmEnd % reader.PageSize != 0)
                throw Error(reader, RecordType.Vma, $"bad or unordered range 0x{vma.VmStart:x}-0x{vma.VmEnd:x}");
            previousEnd = vma.VmEnd;
            // A file mapping names its file and nothing else does (found by fuzzing: a File VMA
            // without a file reached the restore's checks as a null).
            if (!Enum.IsDefined(vma.VmaType))
                throw Error(reader, RecordType.Vma, $"VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x} has unknown type {(uint)vma.VmaType}");
            bool fileMapping = vma.VmaType is VmaType.File or VmaType.SharedFile;
            if (fileMapping != (vma.FileObjRef != 0))
                throw Error(reader, RecordType.Vma, $"VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x} of type {vma.VmaType} has file objref {vma.FileObjRef}: a file mapping needs one, other mappings none");
            FileImage? file = vma.FileObjRef == 0 ? null : objects.File(reader, vma.FileObjRef, RecordType.Vma);
            // Only files with contents are mapped: a regular file by path, or a memfd or deleted file with its contents in the image.
            if (file is not null && file.Record.Kind is not (FileKind.Regular or FileKind.Memfd or FileKind.DeletedFile))
                throw Error(reader, RecordType.Vma, $"maps file objref {vma.FileObjRef}, a {file.Record.Kind} ({file.Path}), which cannot be mapped (only a regular file, a memfd or a deleted file)");
            SharedMemoryImage? shared = SharedMemoryReader.ForVma(reader, vma, newSharedMemory, objects);
            ulong[] inherited = InheritedPagesReader.Read(reader, vma, pid, parentMemory);
            if (reader.DeferAnonymousPageAddresses && vma.VmaType == VmaType.Anon && inherited.Length == 0)
            {
                vmas.Add(new VmaImage(vma, file, []) { DeferredChunks = DeferChunks(reader, vma) });
                continue;
            }
            List<PageChunk> chunks = ReadChunks(reader, vma, inherited);
            if (shared is not null) SharedMemoryReader.RequireEachPageOnce(reader, vma, shared, chunks);
            vmas.Add(new VmaImage(vma, file, chunks) { SharedMemory = shared, InheritedPages = inherited });
        }
        return new MemoryImage(mm, vmas) { Membarrier = ReadMembarrier(reader, objRef) };
    }

    private static MembarrierRegistrations ReadMembarrier(ImageReader reader, int mmObjRef)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() != RecordType.Membarrier) return MembarrierRegistrations.None;
        var membarrier = Next<MembarrierRecord>(reader);
        if (membarrier.MmObjRef != mmObjRef)
            throw Error(reader, RecordType.Membarrier, $"has mm objref {membarrier.MmObjRef}, in the MM {mmObjRef}");
        if (membarrier.Registrations == 0 || (membarrier.Registrations & ~MembarrierRecord.Known) != 0)
            throw Error(reader, RecordType.Membarrier, $"registrations 0x{(uint)membarrier.Registrations:x} are none or not MEMBARRIER_CMD_REGISTER_* bits (known: 0x{(uint)MembarrierRecord.Known:x})");
        return membarrier.Registrations;
    }

    private static List<PageChunk> ReadChunks(ImageReader reader, VmaRecord vma, ulong[] inherited)
    {
        var chunks = new List<PageChunk>();
        ulong pages = (ulong)inherited.Length;
        while (NextPageArray(reader, vma, ref pages) is { } array)
        {
            // Pinned and not zeroed: a 1 GiB image has 256 chunks of 1024 addresses, which in the
            // ordinary heap the GC copied again and again while they were read (compaction of gen0).
            var addresses = GC.AllocateUninitializedArray<ulong>((int)array.PageCount, pinned: true);
            reader.ReadPageAddresses(addresses);
            DeferredPageChunk.CheckAddresses(addresses, vma.VmStart, vma.VmEnd, reader.PageSize, inherited, reader.CurrentRecordOffset);
            chunks.Add(new PageChunk(addresses, reader.Position));
            reader.SkipPageContents();
        }
        return chunks;
    }

    // A lazy restore's private anonymous VMA: the same counts checked, the addresses left for the page server.
    private static List<DeferredPageChunk> DeferChunks(ImageReader reader, VmaRecord vma)
    {
        var chunks = new List<DeferredPageChunk>();
        ulong pages = 0;
        while (NextPageArray(reader, vma, ref pages) is { } array)
        {
            long addressesOffset = reader.Position;
            chunks.Add(new DeferredPageChunk((int)array.PageCount, addressesOffset, addressesOffset + (long)array.PageCount * sizeof(ulong), reader.CurrentRecordOffset));
            reader.SkipPageContents();
        }
        return chunks;
    }

    /// <summary>The next PAGE_ARRAY of a VMA, its pages added to <paramref name="pages"/> and checked against the
    /// VMA's count; null for the empty one that ends the VMA's chunks.</summary>
    private static PageArrayRecord? NextPageArray(ImageReader reader, VmaRecord vma, ref ulong pages)
    {
        var array = Next<PageArrayRecord>(reader);
        if (array.PageCount == 0) return null;
        pages += array.PageCount;
        if (pages > vma.PagesPopulated)
            throw Error(reader, RecordType.PageArray, $"VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x} has more pages in its chunks (and inherited) than the {vma.PagesPopulated} it counted");
        return array;
    }

    // ---- files ----

    private static FileTableImage ReadFileTable(ImageReader reader, int objRef, ObjectTable objects)
    {
        var table = Next<FileTableRecord>(reader);
        if (table.ObjRef != objRef || table.DescriptorCount < 0 || table.DescriptorCount > ImageLimits.MaxDescriptors)
            throw Error(reader, RecordType.FileTable, $"objref {table.ObjRef} (announced {objRef}) with {table.DescriptorCount} descriptors");
        var descriptors = new List<FileDescriptorRecord>(Math.Min(table.DescriptorCount, InitialCapacity));
        var files = new Dictionary<int, FileImage>();
        var fds = new HashSet<int>();
        for (int i = 0; i < table.DescriptorCount; i++)
        {
            ReadFileIfFirstUse(reader, objects);
            var descriptor = Next<FileDescriptorRecord>(reader);
            if (descriptor.Fd < 0 || !fds.Add(descriptor.Fd))
                throw Error(reader, RecordType.FileDescriptor, $"fd {descriptor.Fd} is negative or appears twice");
            files[descriptor.FileObjRef] = objects.File(reader, descriptor.FileObjRef, RecordType.FileDescriptor);
            descriptors.Add(descriptor);
        }
        RequireEventLoopReferences(descriptors, files);
        SocketImageReader.CheckPairs(files);
        return new FileTableImage(objRef, descriptors, files) { Locks = FileLocksReader.Read(reader, files) };
    }

    /// <param name="inFlight">the file travels in flight only (SOCKET_RIGHTS): a kind that may, checked before its records are read</param>
    private static FileImage? ReadFileIfFirstUse(ImageReader reader, ObjectTable objects, bool inFlight = false)
    {
        if (reader.PeekType() != RecordType.File) return null;
        var file = Next<FileRecord>(reader);
        long offset = reader.CurrentRecordOffset;
        if (inFlight && !InFlightFilesReader.CanTravelAlone(file.Kind))
            throw Error(reader, RecordType.File, $"file objref {file.ObjRef} is defined in flight (SCM_RIGHTS) and is a {file.Kind}: only path files, pipe ends and eventfds travel in flight without a descriptor table holding them");
        string path = reader.ReadTrailingString();
        EventfdRecord? eventfd = file.Kind == FileKind.Eventfd ? ReadEventfd(reader, file) : null;
        InotifyImage? inotify = file.Kind == FileKind.Inotify ? InotifyReader.Read(reader, file) : null;
        UnlinkedFileImage? unlinked = file.Kind is FileKind.Memfd or FileKind.DeletedFile ? UnlinkedFileReader.Read(reader, file, path) : null;
        SocketImage? socket = SocketImageReader.IsSocket(file.Kind)
            ? SocketImageReader.Read(reader, file, new FileObjects(() => ReadFileIfFirstUse(reader, objects, inFlight: true), (objRef, user) => objects.File(reader, objRef, user)))
            : null;
        TerminalImage? terminal = TerminalReader.ReadOfEnd(reader, file, path,
            objRef => objects.TryGet(objRef, out var known) ? known : null,
            (objRef, pair, at) => objects.Define(reader, ObjectType.Terminal, objRef, pair, at, RecordType.Terminal));
        FileImage image = ReadEventLoopState(reader, new FileImage(file, path, eventfd) { Inotify = inotify, Unlinked = unlinked, Socket = socket, Terminal = terminal }, objects);
        objects.Define(reader, ObjectType.File, file.ObjRef, image, offset, RecordType.File);
        return image;
    }

    private const uint O_NONBLOCK = 0x800;

    /// <summary>The EVENTFD record that must follow an eventfd's FILE record.</summary>
    private static EventfdRecord ReadEventfd(ImageReader reader, FileRecord file)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != RecordType.Eventfd)
            throw Error(reader, other, $"found where the EVENTFD record of eventfd file objref {file.ObjRef} belongs");
        var eventfd = Next<EventfdRecord>(reader);
        if (eventfd.ObjRef != file.ObjRef)
            throw Error(reader, RecordType.Eventfd, $"has objref {eventfd.ObjRef}, its FILE record {file.ObjRef}");
        if ((eventfd.Flags & ~(EventfdFlags.Semaphore | EventfdFlags.NonBlock)) != 0)
            throw Error(reader, RecordType.Eventfd, $"flags 0x{(uint)eventfd.Flags:x} are not EFD_SEMAPHORE/EFD_NONBLOCK flags");
        if (((file.OpenFlags & O_NONBLOCK) != 0) != eventfd.Flags.HasFlag(EventfdFlags.NonBlock))
            throw Error(reader, RecordType.Eventfd, $"flags 0x{(uint)eventfd.Flags:x} disagree with the file's open flags 0x{file.OpenFlags:x} about O_NONBLOCK");
        if (eventfd.Count > EventfdRecord.MaxCount)
            throw Error(reader, RecordType.Eventfd, $"count 0x{eventfd.Count:x} is above the eventfd maximum 0x{EventfdRecord.MaxCount:x}");
        return eventfd;
    }

    // ---- signals ----

    private static SignalHandlersImage ReadSignalHandlers(ImageReader reader, int objRef)
    {
        var handlers = Next<SignalHandlersRecord>(reader);
        if (handlers.ObjRef != objRef || handlers.ActionCount < 0 || handlers.ActionCount > 64)
            throw Error(reader, RecordType.SignalHandlers, $"objref {handlers.ObjRef} (announced {objRef}) with {handlers.ActionCount} actions (at most 64)");
        var actions = new List<SignalActionRecord>(handlers.ActionCount);
        for (int i = 0; i < handlers.ActionCount; i++)
        {
            var action = Next<SignalActionRecord>(reader);
            if (action.Signal < 1 || action.Signal > 64 || (actions.Count > 0 && action.Signal <= actions[^1].Signal))
                throw Error(reader, RecordType.SignalAction, $"signal {action.Signal} is outside 1..64 or out of order");
            actions.Add(action);
        }
        return new SignalHandlersImage(objRef, actions);
    }

    private static SignalImage ReadSignal(ImageReader reader, int objRef)
    {
        var signal = Next<SignalRecord>(reader);
        if (signal.ObjRef != objRef)
            throw Error(reader, RecordType.Signal, $"has objref {signal.ObjRef}, TASK_OBJECTS announced {objRef}");
        CheckPendingCount(reader, signal.PendingCount, RecordType.Signal);
        List<SignalPendingRecord> pending = ReadPending(reader, signal.PendingCount, shared: true);
        return new SignalImage(signal, pending) { PosixTimers = PosixTimersReader.Read(reader), ControllingTerminal = TerminalReader.ReadControlling(reader, objRef) };
    }

    private static void CheckPendingCount(ImageReader reader, int count, RecordType holder)
    {
        if (count < 0 || count > ImageLimits.MaxPendingSignals)
            throw Error(reader, holder, $"{count} pending signals (at most {ImageLimits.MaxPendingSignals})");
    }

    /// <summary>The queue of a SIGNAL (shared) or THREAD record, whose count was checked when that record was read.</summary>
    private static List<SignalPendingRecord> ReadPending(ImageReader reader, int count, bool shared)
    {
        var pending = new List<SignalPendingRecord>(Math.Min(count, InitialCapacity));
        for (int i = 0; i < count; i++)
        {
            var record = Next<SignalPendingRecord>(reader);
            if (record.Signal < 1 || record.Signal > 64 || record.Shared != (shared ? 1 : 0))
                throw Error(reader, RecordType.SignalPending, $"signal {record.Signal} (shared {record.Shared}) in the {(shared ? "process" : "thread")} queue");
            pending.Add(record);
        }
        return pending;
    }

    // ---- threads ----

    private static ThreadImage ReadThread(ImageReader reader, TaskRecord task)
    {
        var thread = Next<ThreadRecord>(reader);
        if (thread.Tid != task.Pid)
            throw Error(reader, RecordType.Thread, $"thread {thread.Tid} in the section of task {task.Pid}");
        CheckPendingCount(reader, thread.PendingCount, RecordType.Thread);
        RestartBlockRecord? restartBlock = reader.PeekType() == RecordType.RestartBlock ? Next<RestartBlockRecord>(reader) : null;
        var stack = Next<SignalStackRecord>(reader);
        var rseq = Next<RseqRecord>(reader);
        var cpu = Next<CpuRecord>(reader);
        CheckRegistersCanRun(reader, thread.Tid, cpu);
        var xstateRecord = Next<CpuXstateRecord>(reader);
        byte[] xstate = reader.ReadTrailingBytes();
        var pending = ReadPending(reader, thread.PendingCount, shared: false);
        return new ThreadImage(task, thread, restartBlock, stack, rseq, cpu, xstateRecord, xstate, pending);
    }

    /// <summary>
    /// The highest user-space address on x86-64 with 4-level paging (TASK_SIZE_MAX): an instruction
    /// pointer at or above it is in the kernel's half or non-canonical, and so is an fs/gs base
    /// (which the kernel would refuse only after the process exists).
    /// </summary>
    public const ulong UserAddressLimit = 0x0000_7fff_ffff_f000;

    private static void CheckRegistersCanRun(ImageReader reader, int tid, CpuRecord cpu)
    {
        if (cpu.Rip >= UserAddressLimit)
            throw Error(reader, RecordType.Cpu, $"thread {tid}'s instruction pointer 0x{cpu.Rip:x} is not a user-space address (kernel space or non-canonical)");
        if (cpu.FsBase >= UserAddressLimit || cpu.GsBase >= UserAddressLimit)
            throw Error(reader, RecordType.Cpu, $"thread {tid}'s fs base 0x{cpu.FsBase:x} or gs base 0x{cpu.GsBase:x} is not a user-space address");
    }

    // ---- helpers ----

    /// <summary>The next record, which must be a T; an ERROR record in its place means the checkpoint failed.</summary>
    internal static T Next<T>(ImageReader reader) where T : struct, IImageRecord<T>
    {
        reader.ThrowIfFailedCheckpoint();
        return reader.Read<T>();
    }

    private static string NextString(ImageReader reader)
    {
        Next<StringRecord>(reader);
        return reader.ReadTrailingString();
    }

    internal static ImageFormatException Error(ImageReader reader, RecordType? record, string problem) =>
        new(record, reader.CurrentRecordOffset, problem);

    /// <summary>
    /// linux-cr's objhash on the reading side: an object is defined once, by its first use, and
    /// later uses are OBJREF records that must name an object of the same type already defined.
    /// </summary>
    internal sealed class ObjectTable
    {
        private readonly Dictionary<int, (ObjectType Type, object Value)> _objects = [];

        /// <summary>An object defined earlier, for the OBJREF records that follow a FILE record (a pipe end's pipe).</summary>
        public bool TryGet(int objRef, out (ObjectType Type, object Value) known) => _objects.TryGetValue(objRef, out known);

        public T Use<T>(ImageReader reader, ObjectType type, int objRef, Func<T> readFirstUse) where T : class
        {
            // objRef > 0: checked with the TASK_OBJECTS record
            reader.ThrowIfFailedCheckpoint();
            RecordType? next = reader.PeekType();
            bool defined = _objects.TryGetValue(objRef, out var known);
            if (next == RecordType.Objref || (next is null && defined)) // at the end of the image: name the OBJREF that is missing
            {
                var reference = Next<ObjrefRecord>(reader);
                if (reference.ObjectType != type || reference.ObjRef != objRef)
                    throw Error(reader, RecordType.Objref, $"refers to {reference.ObjectType} {reference.ObjRef} where {type} {objRef} was announced");
                if (!defined)
                    throw Error(reader, RecordType.Objref, $"refers to {type} objref {objRef}, which no earlier record defines");
                if (known.Type != type)
                    throw Error(reader, RecordType.Objref, $"refers to {type} objref {objRef}, but objref {objRef} is a {known.Type}, not a {type}");
                return (T)known.Value;
            }
            if (defined && next is { } record)
                throw Error(reader, record, known.Type == type
                    ? $"{type} objref {objRef} is defined again (a later use must be an OBJREF record)"
                    : $"{type} objref {objRef} is defined again: the objref already names a {known.Type}");
            // Taken before the object is read, so that a FILE inside it cannot claim its objref too.
            Define(reader, type, objRef, Reading, reader.CurrentRecordOffset, next ?? RecordType.TaskObjects);
            T value = readFirstUse();
            _objects[objRef] = (type, value);
            return value;
        }

        public void Define(ImageReader reader, ObjectType type, int objRef, object value, long offset, RecordType record)
        {
            if (objRef <= 0)
                throw new ImageFormatException(record, offset, $"{type} objref {objRef} is not valid");
            if (!_objects.TryAdd(objRef, (type, value)))
                throw new ImageFormatException(record, offset, $"{type} objref {objRef} is already defined (as a {_objects[objRef].Type})");
        }

        private static readonly object Reading = new();

        public SharedMemoryImage? SharedMemory(int objRef) =>
            _objects.TryGetValue(objRef, out var known) && known.Type == ObjectType.SharedMemory ? (SharedMemoryImage)known.Value : null;

        public FileImage File(ImageReader reader, int objRef, RecordType user) =>
            !_objects.TryGetValue(objRef, out var known) ? throw Error(reader, user, $"refers to file objref {objRef}, which no earlier FILE record defines")
                : known.Type == ObjectType.File && known.Value is FileImage file ? file
                : throw Error(reader, user, $"refers to file objref {objRef}, which is a {known.Type}, not a file");
    }

    /// <summary>A process while its tasks' sections are read.</summary>
    private sealed class ProcessBuilder
    {
        public required TaskRecord Task { get; init; }
        public string Cwd = "", Root = "", ExePath = "";
        public CredentialsRecord Credentials;
        public uint[] Groups = [];
        public readonly List<ThreadImage> Threads = [];
        public JobControlStopRecord? JobControlStop;
        public bool ChildSubreaper;
        public FsImage? SharedFs;
        private MemoryImage? _memory;
        private FileTableImage? _fileTable;
        private SignalHandlersImage? _handlers;
        private SignalImage? _signal;

        /// <summary>Threads share their leader's objects: anything else is not a thread group this format describes.</summary>
        public void Share(MemoryImage memory, FileTableImage fileTable, SignalHandlersImage handlers, SignalImage signal, int tid, long offset)
        {
            if (_memory is null)
            {
                (_memory, _fileTable, _handlers, _signal) = (memory, fileTable, handlers, signal);
                return;
            }
            if (!ReferenceEquals(_memory, memory) || !ReferenceEquals(_fileTable, fileTable) || !ReferenceEquals(_handlers, handlers) || !ReferenceEquals(_signal, signal))
                throw new ImageFormatException(RecordType.TaskObjects, offset,
                    $"thread {tid} does not share its memory, descriptor table and signal state with its leader {Task.Pid}");
        }

        /// <summary>Its memory once its leader's section is read (the parent of a later process).</summary>
        public MemoryImage? Memory => _memory;

        public SignalHandlersImage? Handlers => _handlers;

        public SignalImage? Signal => _signal;

        public ProcessImage Build() => new()
        {
            Task = Task, Cwd = Cwd, Root = Root, ExePath = ExePath, Credentials = Credentials, Groups = Groups,
            Memory = _memory!, FileTable = _fileTable!, SignalHandlers = _handlers!, Signal = _signal!, Threads = Threads,
            JobControlStop = JobControlStop, ChildSubreaper = ChildSubreaper, SharedFs = SharedFs,
        };
    }
}
