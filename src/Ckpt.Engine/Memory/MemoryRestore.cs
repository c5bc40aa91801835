using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Recreates the image's VMAs at their addresses (MAP_FIXED_NOREPLACE: never over something
/// else), writable while their pages are written, then with the recorded protections.
/// Private file mappings are mapped from their path again (identity checked by validation),
/// opened by the task with the recorded credentials, which it has by now;
/// each shared anonymous VMA is made from the process's view of its object (<see cref="SharedMemoryRestore"/>);
/// a memfd or deleted file is created once with its contents and every mapping of it mmapped from it
/// (<see cref="UnlinkedFileMappings"/>).
/// </summary>
public static class MemoryRestore
{
    private const ulong PROT_WRITE = 2;
    private const ulong MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_GROWSDOWN = 0x100, MAP_NORESERVE = 0x4000, MAP_FIXED_NOREPLACE = 0x100000;
    private const ulong VM_GROWSDOWN = 0x100, VM_NORESERVE = 0x200000;
    private const ulong O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    /// <param name="imageFd">the image, open in the task (<see cref="PageWriter.AddImageOpen"/>); closed here once the pages are in</param>
    /// <param name="pageServer">with a lazy restore: private anonymous memory is registered with it instead of filled</param>
    /// <returns>the memfds and deleted files made for mappings that a descriptor uses too: file objref -> parked descriptor (for FilesRestore)</returns>
    public static IReadOnlyDictionary<int, long> Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, long imageFd, SharedMemoryRestore sharedMemory, LazyPageServer? pageServer = null)
    {
        var unlinked = new UnlinkedFileMappings(syscalls, plan, scratch);
        // Two ptrace stops for most processes: one batch maps the VMAs and has the task fault in and read
        // its long runs of pages; the engine then writes the rest; the second batch sets the protections.
        SyscallBatch batch = MapAll(syscalls, plan, scratch, sharedMemory, unlinked);
        InheritedPages.AddPopulates(batch, plan);
        PageWriter.PendingPages pages = PageWriter.AddReads(batch, syscalls, plan, imageFd, pageServer is null ? null : LazyMemory.IsLazy);
        pages.Finish(batch.Run());
        InheritedPages.Copy(syscalls, plan);
        IReadOnlyDictionary<int, long> mappedFiles = unlinked.Finish();
        Membarrier.Register(syscalls, plan);
        if (pageServer is not null) LazyMemory.Register(syscalls, plan, pageServer);
        var protections = new SyscallBatch(syscalls, scratch);
        foreach (VmaImage vma in plan.Vmas)
        {
            if (NeedsWriteWhileFilling(vma) && (vma.Record.Protection & PROT_WRITE) == 0)
                protections.Add($"mprotect of {Describe(vma)}", SYS_mprotect, vma.Record.VmStart, vma.Length, vma.Record.Protection);
        }
        // The pages are in: the task's descriptor of the image goes in the same stop (-1: it had none,
        // the pages went through /proc/PID/mem).
        if (imageFd >= 0) protections.Add("close of the image", SYS_close, (ulong)imageFd);
        protections.Run();
        sharedMemory.RemoveViews(syscalls, plan);
        return mappedFiles;
    }

    private static bool NeedsWriteWhileFilling(VmaImage vma) =>
        (vma.HasSavedPages || vma.InheritedPages.Count > 0) && vma.Record.VmaType is VmaType.Anon or VmaType.File or VmaType.SharedAnon;

    // Anonymous and file mappings, with their madvise flags, go in batches (SyscallBatch: one ptrace stop
    // for many calls); a shared anonymous or unlinked file mapping needs calls whose results the engine
    // reads, so the batch so far runs first, keeping the order, and those are injected one by one.
    // Returns the last batch, not run yet: the caller adds the calls that fill the VMAs.
    private static SyscallBatch MapAll(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, SharedMemoryRestore sharedMemory, UnlinkedFileMappings unlinked)
    {
        var batch = new SyscallBatch(syscalls, scratch);
        var paths = new Dictionary<string, ulong>(); // in the scratch area until the batch runs
        scratch.Reset();
        foreach (VmaImage vma in plan.Vmas)
        {
            VmaRecord record = vma.Record;
            if (record.VmaType is VmaType.Vdso or VmaType.Vvar or VmaType.VvarVclock or VmaType.Vsyscall) continue;
            ulong protection = record.Protection | (NeedsWriteWhileFilling(vma) ? PROT_WRITE : 0);
            string what = $"mmap of {Describe(vma)}";
            switch (record.VmaType)
            {
                case VmaType.Anon:
                    ulong growsDown = (record.VmFlags & VM_GROWSDOWN) != 0 ? MAP_GROWSDOWN : 0;
                    // A reservation made with MAP_NORESERVE (VM_NORESERVE) is not charged against the commit
                    // limit: without it a 64 GiB writable reservation fails with ENOMEM on a smaller machine.
                    ulong noReserve = (record.VmFlags & VM_NORESERVE) != 0 ? MAP_NORESERVE : 0;
                    batch.Add(what, SYS_mmap, record.VmStart, vma.Length, protection, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | growsDown | noReserve, ulong.MaxValue, 0);
                    break;
                case VmaType.File or VmaType.SharedFile when !UnlinkedFileMappings.Maps(vma):
                    AddFileMapping(batch, vma, PathInScratch(vma, scratch, paths, batch), protection, what);
                    break;
                case VmaType.SharedAnon or VmaType.File or VmaType.SharedFile:
                    batch.Run();
                    paths.Clear();
                    scratch.Reset();
                    if (record.VmaType == VmaType.SharedAnon) sharedMemory.Map(syscalls, plan.Pid, vma, protection);
                    else unlinked.Map(vma, protection, what);
                    scratch.Reset();
                    break;
                default:
                    throw new RestoreRefusedException($"VMA {Describe(vma)} has unknown type {record.VmaType}");
            }
            Advise(batch, vma);
        }
        return batch;
    }

    // The file's path, put in the scratch area once per batch; when the area is full, the batch runs
    // and the area starts again.
    private static ulong PathInScratch(VmaImage vma, ScratchArea scratch, Dictionary<string, ulong> paths, SyscallBatch batch)
    {
        FileImage file = vma.File ?? throw new RestoreRefusedException($"file VMA {Describe(vma)} has no file");
        if (paths.TryGetValue(file.Path, out ulong address)) return address;
        if (scratch.Remaining < (ulong)System.Text.Encoding.UTF8.GetByteCount(file.Path) + 16)
        {
            batch.Run();
            paths.Clear();
            scratch.Reset();
        }
        return paths[file.Path] = scratch.PutString(file.Path);
    }

    // VMA flags that only madvise sets, so mmap cannot give them back: (VM_* bit, MADV_*).
    private static readonly (ulong Flag, ulong Advice, string Name)[] AdvisedFlags =
    [
        (0x20000, 10, "MADV_DONTFORK"), (0x2000000, 18, "MADV_WIPEONFORK"), (0x4000000, 16, "MADV_DONTDUMP"),
        (0x20000000, 14, "MADV_HUGEPAGE"), (0x40000000, 15, "MADV_NOHUGEPAGE"),
    ];

    private static void Advise(SyscallBatch batch, VmaImage vma)
    {
        foreach (var (flag, advice, name) in AdvisedFlags)
        {
            if ((vma.Record.VmFlags & flag) != 0)
                batch.Add($"madvise({name}) of {Describe(vma)}", SYS_madvise, vma.Record.VmStart, vma.Length, advice);
        }
    }

    // openat, mmap of what it returned, close of it (which may fail: the mapping is made).
    private static void AddFileMapping(SyscallBatch batch, VmaImage vma, ulong pathAddress, ulong protection, string what)
    {
        bool shared = vma.Record.VmaType == VmaType.SharedFile;
        ulong openFlags = (shared && (vma.Record.Protection & PROT_WRITE) != 0 ? O_RDWR : O_RDONLY) | O_CLOEXEC;
        int open = batch.Add($"openat of {vma.File!.Path} for {Describe(vma)}", SYS_openat, AT_FDCWD, pathAddress, openFlags, 0);
        batch.Add(what, SYS_mmap, vma.Record.VmStart, vma.Length, protection,
            (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE, BatchArgument.Result(open), vma.Record.VmPgoff * 4096);
        batch.AddMayFail($"close of {vma.File.Path}", SYS_close, BatchArgument.Result(open));
    }

    internal static string Describe(VmaImage vma) =>
        $"VMA 0x{vma.Record.VmStart:x}-0x{vma.Record.VmEnd:x} ({vma.Record.VmaType}{(vma.File is null ? "" : " " + vma.File.Path)})";
}
