using System.Text;
using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Restore;

/// <summary>
/// The refusals, checked before any process exists: wrong architecture or page size, another
/// kernel release (unless forced), state this engine cannot rebuild, a pid in use, mappings below
/// vm.mmap_min_addr, open flags a checkpoint never records, and backing files that are missing,
/// changed since the checkpoint or of another kind now (docs/SECURITY.md).
/// </summary>
public static class RestoreValidation
{
    public static void Validate(RestorePlan plan, bool force)
    {
        ValidateImage(plan, force);
        CheckIdsFree(plan);
    }

    /// <summary>Everything but the pids being free: what the image asks for, against this machine (the fuzzer's entry too).</summary>
    public static void ValidateImage(RestorePlan plan, bool force)
    {
        // First: a caller other than root learns nothing about another user's image's files.
        UnprivilegedMode.CheckImage(plan);
        CheckMachine(plan, force);
        // The files a tree's processes map are mostly the same few (the program, libc): each is looked up once.
        var identities = new Dictionary<string, FileIdentity?>();
        foreach (ProcessImage process in plan.Processes)
        {
            RestorePlan view = plan.ForProcess(process);
            CheckTask(view);
            CheckMemory(view);
            CheckFiles(view, identities);
            Signals.PosixTimers.Validate(view);
        }
        TreeCreation.Validate(plan);
    }

    private static void CheckIdsFree(RestorePlan plan)
    {
        // Every pid of the tree, thread ids included, must be free (a zombie leader's threads are already gone).
        foreach (TaskIdsRecord task in plan.Image.TaskTable)
        {
            bool free = task.Pid == task.Tgid ? PidBecomesFree(task.Pid) : ProcStat.IsZombie(task.Pid) is null;
            if (!free) throw new PidInUseException(task.Pid, ProcessNames.CommOf(task.Pid));
        }
    }

    // The usual holder right after `checkpoint --kill` is the killed process itself, a zombie
    // until its parent reaps it: give the parent a moment (bounded), but never wait for a live one.
    private static bool PidBecomesFree(int pid)
    {
        const int Attempts = 1000, SleepMilliseconds = 2;
        for (int attempt = 0; attempt < Attempts; attempt++)
        {
            switch (ProcStat.IsZombie(pid))
            {
                case null: return true;
                case false: return false;
            }
            Thread.Sleep(SleepMilliseconds);
        }
        return ProcStat.IsZombie(pid) is null;
    }

    private static unsafe void CheckMachine(RestorePlan plan, bool force)
    {
        HeaderRecord header = plan.Header;
        if (header.Arch != Architecture.X86_64)
            throw new RestoreRefusedException($"the image is for architecture {(uint)header.Arch}, this engine restores x86-64 (62) only");
        string machine = Fixed(header.Machine, 65);
        if (machine != "x86_64")
            throw new RestoreRefusedException($"the image was written on a '{machine}' machine, this is x86_64");
        if (header.PageSize != (uint)Environment.SystemPageSize)
            throw new RestoreRefusedException($"the image's page size is {header.PageSize}, this system's {Environment.SystemPageSize}");
        string imageRelease = Fixed(header.KernelRelease, 65);
        string release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        if (imageRelease != release && !force)
            throw new RestoreRefusedException($"the image comes from kernel {imageRelease}, this is {release}: vdso layout and syscall behaviour may differ (use --force to restore anyway)");
    }

    private static void CheckTask(RestorePlan plan)
    {
        if (plan.Task.SeccompMode != 0)
            throw new RestoreRefusedException($"the process used seccomp (mode {plan.Task.SeccompMode}), which restore does not rebuild");
        if (plan.Task.ThreadCount != plan.Threads.Count)
            throw new RestoreRefusedException($"the process's task record says {plan.Task.ThreadCount} threads, the image holds {plan.Threads.Count}");
        if (plan.Root != "/")
            throw new RestoreRefusedException($"the process had root directory {plan.Root}: only / is supported");
        if (plan.Threads[0].Thread.Tid != plan.Pid)
            throw new RestoreRefusedException($"the image's thread {plan.Threads[0].Thread.Tid} is not its main thread {plan.Pid}");
        if (FileIdentity.Of(plan.ExePath) is null)
            throw new RestoreRefusedException($"the program {plan.ExePath} is missing");
    }

    /// <summary>The lowest address an unprivileged mmap may use on this host (read once: every process of a tree is checked against it).</summary>
    public static ulong MmapMinAddress() => s_mmapMinAddress.Value;

    private static readonly Lazy<ulong> s_mmapMinAddress = new(() =>
        ulong.Parse(File.ReadAllText("/proc/sys/vm/mmap_min_addr").Trim(), System.Globalization.CultureInfo.InvariantCulture));

    // A mapping below vm.mmap_min_addr (page 0 above all) turns kernel NULL-pointer bugs into
    // exploits: the kernel refuses it to unprivileged processes, and the engine, which maps as
    // root, refuses it for every image.
    private static void CheckMemory(RestorePlan plan)
    {
        Memory.Membarrier.Validate(plan);
        ulong minimum = MmapMinAddress();
        foreach (VmaImage vma in plan.Vmas)
        {
            if (vma.Record.VmStart < minimum)
                throw new RestoreRefusedException($"the mapping 0x{vma.Record.VmStart:x}-0x{vma.Record.VmEnd:x} starts below vm.mmap_min_addr (0x{minimum:x}): refused");
        }
    }

    // Flags the kernel never leaves in f_flags (do_dentry_open clears O_CREAT, O_EXCL, O_TRUNC),
    // and O_TMPFILE, whose file has no name to reopen: an image that has them was edited.
    internal const uint O_CREAT = 0x40, O_EXCL = 0x80, O_TRUNC = 0x200, O_TMPFILE_BIT = 0x400000;
    internal const uint S_IFMT = 0xf000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xc000, S_IFLNK = 0xa000;

    internal static string FlagNames(uint flags) => string.Join('|', new[] { (O_CREAT, "O_CREAT"), (O_EXCL, "O_EXCL"), (O_TRUNC, "O_TRUNC"), (O_TMPFILE_BIT, "O_TMPFILE") }
        .Where(f => (flags & f.Item1) != 0).Select(f => f.Item2));

    /// <summary>What a path is now, in words, from its lstat mode.</summary>
    public static string KindOfMode(uint mode) => (mode & S_IFMT) switch
    {
        S_IFREG => "a regular file", S_IFDIR => "a directory", S_IFCHR => "a character device", S_IFBLK => "a block device",
        S_IFIFO => "a FIFO", S_IFSOCK => "a socket", S_IFLNK => "a symbolic link", _ => $"of type 0{mode & S_IFMT:o}",
    };

    internal static uint ModeFor(FileKind kind) => kind switch
    {
        FileKind.Regular => S_IFREG, FileKind.Directory => S_IFDIR, FileKind.CharacterDevice => S_IFCHR, FileKind.BlockDevice => S_IFBLK, _ => 0,
    };

    private static void CheckFiles(RestorePlan plan, Dictionary<string, FileIdentity?> identities)
    {
        foreach (VmaImage vma in plan.Vmas)
        {
            if (vma.Record.VmaType is not (VmaType.File or VmaType.SharedFile)) continue;
            if (Memory.UnlinkedFileMappings.Maps(vma))
            {
                Memory.UnlinkedFileMappings.Validate(vma, plan); // no path to compare: its contents are in the image
                continue;
            }
            FileImage file = vma.File!;
            if (!identities.TryGetValue(file.Path, out FileIdentity? found)) identities[file.Path] = found = FileIdentity.Of(file.Path);
            FileIdentity identity = found
                ?? throw new RestoreRefusedException($"file {file.Path}, mapped at 0x{vma.Record.VmStart:x}, is missing");
            FileRecord r = file.Record;
            string? change = identity.Device != r.Device || identity.Inode != r.Inode ? $"it is another file now (device {identity.Device} inode {identity.Inode}, was {r.Device}/{r.Inode})"
                : identity.Size != r.FileSize ? $"its size is {identity.Size}, was {r.FileSize}"
                : identity.MtimeNanoseconds != r.MtimeNanoseconds ? "it was modified (mtime differs)"
                : null;
            if (change is not null && vma.Record.VmaType == VmaType.File)
                throw new RestoreRefusedException($"file {file.Path}, mapped at 0x{vma.Record.VmStart:x}, changed since the checkpoint: {change}");
        }
        FilesRestore.Validate(plan);
    }

    private static unsafe string Fixed(byte* bytes, int capacity)
    {
        int length = 0;
        while (length < capacity && bytes[length] != 0) length++;
        return Encoding.UTF8.GetString(bytes, length);
    }
}
