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

    /// <param name="imageFd">the image, open in the task (<see cref="PageWriter.OpenImageInTask"/>)</param>
    /// <param name="pageServer">with a lazy restore: private anonymous memory is registered with it instead of filled</param>
    /// <returns>the memfds and deleted files made for mappings that a descriptor uses too: file objref -> parked descriptor (for FilesRestore)</returns>
    public static IReadOnlyDictionary<int, long> Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, long imageFd, SharedMemoryRestore sharedMemory, LazyPageServer? pageServer = null)
    {
        var unlinked = new UnlinkedFileMappings(syscalls, plan, scratch);
        foreach (VmaImage vma in plan.Vmas)
        {
            if (vma.Record.VmaType is VmaType.Vdso or VmaType.Vvar or VmaType.VvarVclock or VmaType.Vsyscall) continue;
            scratch.Reset();
            Map(syscalls, plan.Pid, vma, scratch, sharedMemory, unlinked);
            Advise(syscalls, vma);
        }
        IReadOnlyDictionary<int, long> mappedFiles = unlinked.Finish();
        Membarrier.Register(syscalls, plan);
        InheritedPages.Copy(syscalls, plan);
        if (pageServer is null) PageWriter.WriteAll(syscalls, plan, imageFd);
        else
        {
            LazyMemory.Register(syscalls, plan, pageServer);
            PageWriter.WriteAll(syscalls, plan, imageFd, LazyMemory.IsLazy);
        }
        foreach (VmaImage vma in plan.Vmas)
        {
            if (NeedsWriteWhileFilling(vma) && (vma.Record.Protection & PROT_WRITE) == 0)
                syscalls.Call($"mprotect of {Describe(vma)}", SYS_mprotect, vma.Record.VmStart, vma.Length, vma.Record.Protection);
        }
        sharedMemory.RemoveViews(syscalls, plan);
        return mappedFiles;
    }

    private static bool NeedsWriteWhileFilling(VmaImage vma) =>
        (vma.Chunks.Count > 0 || vma.InheritedPages.Count > 0) && vma.Record.VmaType is VmaType.Anon or VmaType.File or VmaType.SharedAnon;

    private static void Map(SyscallInjector syscalls, int pid, VmaImage vma, ScratchArea scratch, SharedMemoryRestore sharedMemory, UnlinkedFileMappings unlinked)
    {
        VmaRecord record = vma.Record;
        ulong protection = record.Protection | (NeedsWriteWhileFilling(vma) ? PROT_WRITE : 0);
        ulong growsDown = (record.VmFlags & VM_GROWSDOWN) != 0 ? MAP_GROWSDOWN : 0;
        // A reservation made with MAP_NORESERVE (VM_NORESERVE) is not charged against the commit
        // limit: without it a 64 GiB writable reservation fails with ENOMEM on a smaller machine.
        ulong noReserve = (record.VmFlags & VM_NORESERVE) != 0 ? MAP_NORESERVE : 0;
        string what = $"mmap of {Describe(vma)}";
        switch (record.VmaType)
        {
            case VmaType.Anon:
                syscalls.Call(what, SYS_mmap, record.VmStart, vma.Length, protection, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | growsDown | noReserve, ulong.MaxValue, 0);
                break;
            case VmaType.SharedAnon:
                sharedMemory.Map(syscalls, pid, vma, protection);
                break;
            case VmaType.File or VmaType.SharedFile when UnlinkedFileMappings.Maps(vma):
                unlinked.Map(vma, protection, what);
                break;
            case VmaType.File or VmaType.SharedFile:
                MapFile(syscalls, vma, scratch, protection, what);
                break;
            default:
                throw new RestoreRefusedException($"VMA {Describe(vma)} has unknown type {record.VmaType}");
        }
    }

    // VMA flags that only madvise sets, so mmap cannot give them back: (VM_* bit, MADV_*).
    private static readonly (ulong Flag, ulong Advice, string Name)[] AdvisedFlags =
    [
        (0x20000, 10, "MADV_DONTFORK"), (0x2000000, 18, "MADV_WIPEONFORK"), (0x4000000, 16, "MADV_DONTDUMP"),
        (0x20000000, 14, "MADV_HUGEPAGE"), (0x40000000, 15, "MADV_NOHUGEPAGE"),
    ];

    private static void Advise(SyscallInjector syscalls, VmaImage vma)
    {
        foreach (var (flag, advice, name) in AdvisedFlags)
        {
            if ((vma.Record.VmFlags & flag) != 0)
                syscalls.Call($"madvise({name}) of {Describe(vma)}", SYS_madvise, vma.Record.VmStart, vma.Length, advice);
        }
    }

    private static void MapFile(SyscallInjector syscalls, VmaImage vma, ScratchArea scratch, ulong protection, string what)
    {
        FileImage file = vma.File ?? throw new RestoreRefusedException($"file VMA {Describe(vma)} has no file");
        bool shared = vma.Record.VmaType == VmaType.SharedFile;
        ulong openFlags = (shared && (vma.Record.Protection & PROT_WRITE) != 0 ? O_RDWR : O_RDONLY) | O_CLOEXEC;
        long fd = syscalls.Call($"openat of {file.Path} for {Describe(vma)}", SYS_openat, AT_FDCWD, scratch.PutString(file.Path), openFlags, 0);
        try
        {
            syscalls.Call(what, SYS_mmap, vma.Record.VmStart, vma.Length, protection,
                (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE, (ulong)fd, vma.Record.VmPgoff * 4096);
        }
        finally
        {
            syscalls.CallRaw(SYS_close, (ulong)fd);
        }
    }

    internal static string Describe(VmaImage vma) =>
        $"VMA 0x{vma.Record.VmStart:x}-0x{vma.Record.VmEnd:x} ({vma.Record.VmaType}{(vma.File is null ? "" : " " + vma.File.Path)})";
}
