using Ckpt.Image.Records;

namespace CkptPS.Reading;

/// <summary>Turns a VMA record into what /proc/PID/maps would have shown for it.</summary>
internal static class VmaView
{
    private const uint ProtRead = 1, ProtWrite = 2, ProtExec = 4;

    /// <param name="pagesSaved">the pages the VMA's chunks hold</param>
    public static CkptVma Create(string image, int pid, uint pageSize, in VmaRecord vma, ulong pagesSaved, in MmRecord mm,
        Dictionary<int, (FileRecord Record, string Path)> files)
    {
        bool hasFile = files.TryGetValue(vma.FileObjRef, out var file) && vma.FileObjRef != 0;
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
            Path = hasFile ? file.Path : KernelName(vma, mm),
            Device = hasFile ? file.Record.Device : 0,
            Inode = hasFile ? file.Record.Inode : 0,
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
    public static CkptFile Create(string image, int pid, in FileDescriptorRecord descriptor, in FileRecord file, string path) => new()
    {
        ImagePath = image,
        Pid = pid,
        Fd = descriptor.Fd,
        Kind = file.Kind,
        Path = path,
        Flags = (OpenFlags)file.OpenFlags,
        Position = file.Position,
        CloseOnExec = descriptor.CloseOnExec != 0,
        Mode = file.Mode,
        Device = file.Device,
        Inode = file.Inode,
        Size = file.FileSize,
        LastWriteTimeUtc = FromUnixNanoseconds(file.MtimeNanoseconds),
    };

    public static DateTime FromUnixNanoseconds(long nanoseconds) =>
        DateTime.UnixEpoch.AddTicks(Math.Clamp(nanoseconds / 100, 0, DateTime.MaxValue.Ticks - DateTime.UnixEpoch.Ticks));
}

internal static class TaskView
{
    public static unsafe CkptTask Create(string image, HeaderRecord header, TaskRecord task, string cwd, string root,
        string exe, in CredentialsRecord credentials, uint[] groups, int vmaCount, int fileCount, ulong pagesSaved) => new()
    {
        ImagePath = image,
        Pid = task.Pid,
        Tgid = task.Tgid,
        Ppid = task.Ppid,
        Pgid = task.Pgid,
        Sid = task.Sid,
        Comm = ImageModelReader.CString(task.Comm, 16),
        Exe = exe,
        Cwd = cwd,
        Root = root,
        Credentials = new CkptCredentials
        {
            Uid = credentials.Uid, Euid = credentials.Euid, Suid = credentials.Suid, Fsuid = credentials.Fsuid,
            Gid = credentials.Gid, Egid = credentials.Egid, Sgid = credentials.Sgid, Fsgid = credentials.Fsgid,
            Groups = groups,
            CapInheritable = credentials.CapInheritable, CapPermitted = credentials.CapPermitted,
            CapEffective = credentials.CapEffective, CapBounding = credentials.CapBounding,
            CapAmbient = credentials.CapAmbient, SecureBits = credentials.SecureBits,
        },
        ThreadCount = task.ThreadCount,
        Umask = task.Umask,
        Personality = task.Personality,
        NoNewPrivileges = task.NoNewPrivileges != 0,
        StartTimeTicks = task.StartTimeTicks,
        VmaCount = vmaCount,
        FileCount = fileCount,
        PagesSaved = pagesSaved,
        SavedBytes = pagesSaved * header.PageSize,
        KernelRelease = ImageModelReader.CString(header.KernelRelease, 65),
        CheckpointTimeUtc = FileView.FromUnixNanoseconds(header.CreatedUnixNanoseconds),
    };
}
