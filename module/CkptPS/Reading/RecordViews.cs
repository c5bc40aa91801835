using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace CkptPS.Reading;

/// <summary>
/// Get-CkptImage's objects from the image model: per process its task, then its VMAs, then its
/// files, then its threads.
/// </summary>
internal static class ImageObjects
{
    public static IEnumerable<object> All(string image, ImageModel model)
    {
        var states = ProcessTree.Of(model).ToDictionary(e => e.Pid);
        foreach (ProcessImage process in model.Processes)
        {
            yield return TaskView.Create(image, model.Header, process, states[process.Pid].State);
            foreach (VmaImage vma in process.Memory.Vmas) yield return VmaView.Create(image, process.Pid, model.Header.PageSize, vma, process.Memory.Mm);
            foreach (FileDescriptorRecord descriptor in process.FileTable.Descriptors)
                yield return FileView.Create(image, process.Pid, descriptor, process.FileTable.Files[descriptor.FileObjRef]);
            foreach (ThreadImage thread in process.Threads) yield return ThreadView.Create(image, process.Pid, thread);
        }
        foreach (ZombieImage zombie in model.Zombies) yield return TaskView.Create(image, model.Header, zombie);
    }

    public static IEnumerable<CkptTask> Tasks(string image, ImageModel model) => All(image, model).OfType<CkptTask>();
}

/// <summary>Turns a VMA of the model into what /proc/PID/maps would have shown for it.</summary>
internal static class VmaView
{
    private const uint ProtRead = 1, ProtWrite = 2, ProtExec = 4;

    public static CkptVma Create(string image, int pid, uint pageSize, VmaImage vmaImage, in MmRecord mm)
    {
        VmaRecord vma = vmaImage.Record;
        FileImage? file = vmaImage.File;
        ulong pagesSaved = vmaImage.PagesSaved;
        return new CkptVma
        {
            ImagePath = image,
            Pid = pid,
            VmaType = vma.VmaType,
            Start = vma.VmStart,
            End = vma.VmEnd,
            Protection = ProtectionText(vma),
            Flags = (VmaFlags)vma.VmFlags,
            PageOffset = vma.VmPgoff,
            Offset = vma.VmPgoff * pageSize,
            Path = file is not null ? file.Path : KernelName(vma, mm),
            Device = file?.Record.Device ?? 0,
            Inode = file?.Record.Inode ?? 0,
            PagesSaved = pagesSaved,
            SavedBytes = pagesSaved * pageSize,
        };
    }

    private static string ProtectionText(in VmaRecord vma)
    {
        bool shared = vma.VmaType is VmaType.SharedAnon or VmaType.SharedFile
            || ((VmaFlags)vma.VmFlags & VmaFlags.MayShare) != 0;
        return string.Concat(
            (vma.Protection & ProtRead) != 0 ? "r" : "-",
            (vma.Protection & ProtWrite) != 0 ? "w" : "-",
            (vma.Protection & ProtExec) != 0 ? "x" : "-",
            shared ? "s" : "p");
    }

    /// <summary>The name maps gives mappings without a file (fs/proc/task_mmu.c's rules).</summary>
    private static string KernelName(in VmaRecord vma, in MmRecord mm) => vma.VmaType switch
    {
        VmaType.Vdso => "[vdso]",
        VmaType.Vvar => "[vvar]",
        VmaType.VvarVclock => "[vvar_vclock]",
        VmaType.Vsyscall => "[vsyscall]",
        VmaType.SharedAnon => "/dev/zero (deleted)",
        _ when vma.VmStart <= mm.Brk && vma.VmEnd >= mm.StartBrk && mm.Brk != 0 => "[heap]",
        _ when vma.VmStart <= mm.StartStack && vma.VmEnd >= mm.StartStack => "[stack]",
        _ => "",
    };
}

internal static class FileView
{
    public static CkptFile Create(string image, int pid, in FileDescriptorRecord descriptor, FileImage file) => new()
    {
        ImagePath = image,
        Pid = pid,
        Fd = descriptor.Fd,
        Kind = file.Record.Kind,
        Path = file.Path,
        Flags = (OpenFlags)file.Record.OpenFlags,
        Position = file.Record.Position,
        CloseOnExec = descriptor.CloseOnExec != 0,
        Mode = file.Record.Mode,
        Device = file.Record.Device,
        Inode = file.Record.Inode,
        Size = file.Record.FileSize,
        LastWriteTimeUtc = FromUnixNanoseconds(file.Record.MtimeNanoseconds),
        Family = file.Socket?.Record.Family,
        SocketType = file.Socket?.Record.SocketType,
        Protocol = file.Socket is { } s ? s.Record.Protocol switch { SocketAddress.IPPROTO_TCP => "tcp", SocketAddress.IPPROTO_UDP => "udp", _ => "" } : null,
        SocketState = file.Socket?.Record.State,
        State = FileStateText.Describe(file),
        LocalAddress = file.Socket?.LocalAddress,
        PeerAddress = file.Socket?.PeerAddress,
        Backlog = file.Socket?.Record.Backlog,
        QueuedBytes = file.Socket is { Tcp: { } tcp } ? (ulong)tcp.ReceiveQueue.Length : file.Socket?.Record.QueuedBytes,
        SocketSummary = file.Socket is { } socket ? SocketSummary(socket) : null,
    };

    /// <summary>"unix stream Listening /tmp/app.sock", "inet udp Connected 127.0.0.1:5000 -> 127.0.0.1:53".</summary>
    public static string SocketSummary(SocketImage socket)
    {
        string text = $"{socket.Description} {socket.Record.State}";
        if (socket.LocalAddress.Length > 0) text += " " + socket.LocalAddress;
        if (socket.PeerAddress.Length > 0) text += " -> " + socket.PeerAddress;
        if (socket.PendingConnection is { } pending) text += $" -> socket:[{pending.ListenerInode}], not yet accepted (place {pending.Position + 1})";
        if (socket.Datagrams.Count > 0) text += $", {socket.Datagrams.Count} datagrams queued ({socket.Record.QueuedBytes} bytes)";
        else if (socket.Record.QueuedBytes > 0) text += $", {socket.Record.QueuedBytes} bytes queued";
        return text;
    }

    public static DateTime FromUnixNanoseconds(long nanoseconds) =>
        DateTime.UnixEpoch.AddTicks(Math.Clamp(nanoseconds / 100, 0, DateTime.MaxValue.Ticks - DateTime.UnixEpoch.Ticks));
}

internal static class TaskView
{
    /// <summary>A zombie: ids, name and exit status; nothing else of it is left.</summary>
    public static unsafe CkptTask Create(string image, HeaderRecord header, ZombieImage zombie)
    {
        TaskRecord task = zombie.Task;
        return new CkptTask
        {
            ImagePath = image, Pid = task.Pid, Tgid = task.Tgid, Ppid = task.Ppid, Pgid = task.Pgid, Sid = task.Sid,
            Comm = RecordText.CString(task.Comm, 16), Exe = "", Cwd = "", Root = "", State = "zombie", ExitStatus = zombie.ExitStatus,
            ThreadCount = 0, StartTimeTicks = task.StartTimeTicks, Umask = 0, Personality = 0, NoNewPrivileges = false,
            VmaCount = 0, FileCount = 0, PagesSaved = 0, SavedBytes = 0,
            KernelRelease = RecordText.CString(header.KernelRelease, 65),
            CheckpointTimeUtc = FileView.FromUnixNanoseconds(header.CreatedUnixNanoseconds),
        };
    }

    public static unsafe CkptTask Create(string image, HeaderRecord header, ProcessImage process, string state)
    {
        TaskRecord task = process.Task;
        CredentialsRecord credentials = process.Credentials;
        ulong pagesSaved = (ulong)process.Memory.Vmas.Sum(v => (long)v.PagesSaved);
        return new CkptTask
        {
            ImagePath = image,
            Pid = task.Pid,
            Tgid = task.Tgid,
            Ppid = task.Ppid,
            Pgid = task.Pgid,
            Sid = task.Sid,
            State = state,
            Comm = RecordText.CString(task.Comm, 16),
            Exe = process.ExePath,
            Cwd = process.Cwd,
            Root = process.Root,
            Credentials = new CkptCredentials
            {
                Uid = credentials.Uid, Euid = credentials.Euid, Suid = credentials.Suid, Fsuid = credentials.Fsuid,
                Gid = credentials.Gid, Egid = credentials.Egid, Sgid = credentials.Sgid, Fsgid = credentials.Fsgid,
                Groups = process.Groups,
                CapInheritable = credentials.CapInheritable, CapPermitted = credentials.CapPermitted,
                CapEffective = credentials.CapEffective, CapBounding = credentials.CapBounding,
                CapAmbient = credentials.CapAmbient, SecureBits = credentials.SecureBits,
            },
            ThreadCount = task.ThreadCount,
            Umask = task.Umask,
            Personality = task.Personality,
            NoNewPrivileges = task.NoNewPrivileges != 0,
            StartTimeTicks = task.StartTimeTicks,
            VmaCount = process.Memory.Vmas.Count,
            FileCount = process.FileTable.Descriptors.Count,
            PagesSaved = pagesSaved,
            SavedBytes = pagesSaved * header.PageSize,
            KernelRelease = RecordText.CString(header.KernelRelease, 65),
            CheckpointTimeUtc = FileView.FromUnixNanoseconds(header.CreatedUnixNanoseconds),
        };
    }
}

internal static class ThreadView
{
    private const int SsDisable = 2;

    public static CkptThread Create(string image, int pid, ThreadImage thread)
    {
        ThreadRecord record = thread.Thread;
        SignalStackRecord stack = thread.SignalStack;
        bool noStack = (stack.Flags & SsDisable) != 0 || stack.StackSize == 0;
        return new CkptThread
        {
            ImagePath = image,
            Pid = pid,
            Tid = thread.Tid,
            Name = thread.Name,
            State = record.SyscallState,
            SyscallNumber = record.SyscallNumber,
            SyscallName = SyscallNames.Name(record.SyscallNumber) ?? "",
            Syscall = SyscallNames.Describe(record.SyscallNumber),
            RestartFunction = thread.RestartBlock?.Function ?? RestartFunction.None,
            BlockedSignals = record.BlockedSignals,
            PendingSignals = thread.Pending.Count,
            SignalStack = noStack ? "disabled" : $"0x{stack.StackPointer:x}+{stack.StackSize}",
            SignalStackPointer = stack.StackPointer,
            SignalStackSize = stack.StackSize,
            Nice = record.Nice,
            Policy = (SchedulingPolicy)record.SchedulingPolicy,
            Priority = record.SchedulingPriority,
            Rip = thread.Cpu.Rip,
        };
    }
}
