using System.Runtime.Intrinsics.X86;
using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// The image against what the kernel says about the target right after the checkpoint (which
/// resumed it into the same wait): every VMA of smaps, exactly the pages pagemap shows the process
/// wrote itself, every descriptor of /proc/PID/fd with fdinfo's position and flags, and the
/// registers and xsave area from a ptrace attach of the test's own.
/// </summary>
[Collection("checkpoint")]
public class CheckpointImageAgainstProcTests
{
    private const int SYS_pause = 34;

    private static ImageContents CheckpointAndRead(int pid)
    {
        string image = TempPath("proc.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(pid, output, Kill: false));
        return ReadImage(image);
    }

    public static TheoryData<string, string[]> Workloads => new()
    {
        { "ckpt_state", ["data"] },
        { "ckpt_avx", [] },
        { "ckpt_modes", ["cow", "cowfile"] },
    };

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Image_matches_smaps_pagemap_fds_and_ptrace(string workload, string[] arguments)
    {
        using var target = Start(workload, arguments.Select(a => a is "data" or "cowfile" ? TempPath(a) : a).ToArray());
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        ImageContents image = CheckpointAndRead(target.Pid);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause); // back in the same wait

        AssertVmasAndPages(target.Pid, image);
        AssertDescriptors(target.Pid, image);
        AssertRegisters(target.Pid, image);
        target.RequirePass();
    }

    private static readonly Dictionary<string, ulong> ComparedVmFlags = new()
    {
        ["rd"] = 0x1, ["wr"] = 0x2, ["ex"] = 0x4, ["sh"] = 0x8, ["gd"] = 0x100, ["nr"] = 0x200000,
        ["dd"] = 0x4000000, ["hg"] = 0x20000000, ["nh"] = 0x40000000,
    };

    private static void AssertVmasAndPages(int pid, ImageContents image)
    {
        List<ProcOracle.Mapping> maps = ProcOracle.Smaps(pid);
        Assert.Equal(maps.Select(m => (m.Start, m.End)), image.Vmas.Select(v => (v.VmStart, v.VmEnd)));
        ulong zeroPfn = ProcOracle.ZeroPagePfn();
        foreach (var (map, vma) in maps.Zip(image.Vmas))
        {
            string where = $"VMA {map.Start:x}-{map.End:x} {map.Name}";
            Assert.True(map.Protection == vma.Protection, $"{where}: protection {vma.Protection}, smaps {map.Permissions}");
            Assert.True(map.Offset == vma.VmPgoff * 4096, $"{where}: offset");
            foreach (var (name, bit) in ComparedVmFlags)
                Assert.True(map.VmFlags.Contains(name) == ((vma.VmFlags & bit) != 0), $"{where}: VmFlag {name}");
            Assert.Equal(ExpectedType(map), vma.VmaType);
            if (vma.VmaType is VmaType.File or VmaType.SharedFile)
                Assert.Equal(map.Name, image.Files[vma.FileObjRef].Path);

            var saved = image.Pages.Keys.Where(a => a >= map.Start && a < map.End).Order().ToList();
            Assert.True((ulong)saved.Count <= vma.PagesPopulated, $"{where}: PagesPopulated {vma.PagesPopulated}, {saved.Count} pages in its chunks");
            Assert.Equal(ExpectedPages(pid, map, vma.VmaType, zeroPfn).Where(a => !IsAllZeroAnonymous(pid, a, vma.VmaType)), saved);
            foreach (ulong address in saved)
                Assert.True(SamePage(image.Pages[address], Ckpt.Engine.Linux.ProcessMemory.ReadExact(pid, address, 4096), address, image.Rseq), $"{where}: contents of page 0x{address:x}");
        }
    }

    // The same bytes, except the thread's rseq area: the kernel rewrites its cpu_id fields whenever the
    // released thread next returns to user space on another CPU (a loaded machine migrates it).
    private static bool SamePage(byte[] saved, byte[] now, ulong address, RseqRecord rseq)
    {
        if (rseq.Address != 0 && rseq.Address + rseq.Length > address && rseq.Address < address + 4096)
        {
            int from = (int)(Math.Max(rseq.Address, address) - address), to = (int)(Math.Min(rseq.Address + rseq.Length, address + 4096) - address);
            saved = (byte[])saved.Clone();
            now = (byte[])now.Clone();
            saved.AsSpan(from, to - from).Clear();
            now.AsSpan(from, to - from).Clear();
        }
        return saved.AsSpan().SequenceEqual(now);
    }

    private static VmaType ExpectedType(ProcOracle.Mapping map) => map.Name switch
    {
        "[vdso]" => VmaType.Vdso,
        "[vvar]" => VmaType.Vvar,
        "[vvar_vclock]" => VmaType.VvarVclock,
        "[vsyscall]" => VmaType.Vsyscall,
        _ when map.Inode == 0 => map.Private ? VmaType.Anon : VmaType.SharedAnon,
        _ when !map.Private && map.Name.StartsWith("/dev/zero") => VmaType.SharedAnon,
        _ => map.Private ? VmaType.File : VmaType.SharedFile,
    };

    // Private mappings: the pages the process has written (present or swapped, not the file's
    // own page, not the zero page). Shared anonymous memory: every present page. Else none.
    private static List<ulong> ExpectedPages(int pid, ProcOracle.Mapping map, VmaType type, ulong zeroPfn)
    {
        if (type is not (VmaType.Anon or VmaType.File or VmaType.SharedAnon)) return [];
        ulong[] entries = ProcOracle.Pagemap(pid, map.Start, map.End);
        var pages = new List<ulong>();
        for (int i = 0; i < entries.Length; i++)
        {
            ulong e = entries[i];
            bool populated = (e & (ProcOracle.Present | ProcOracle.Swapped)) != 0;
            bool own = type == VmaType.SharedAnon || (e & ProcOracle.FilePage) == 0;
            bool zero = (e & ProcOracle.Present) != 0 && (e & ProcOracle.PfnMask) == zeroPfn;
            if (populated && own && !zero) pages.Add(map.Start + (ulong)i * 4096);
        }
        return pages;
    }

    // An anonymous page the process filled with zeros is not stored: a fresh mapping reads the same.
    private static bool IsAllZeroAnonymous(int pid, ulong address, VmaType type) =>
        type is VmaType.Anon or VmaType.SharedAnon && !Ckpt.Engine.Linux.ProcessMemory.ReadExact(pid, address, 4096).AsSpan().ContainsAnyExcept((byte)0);

    private static void AssertDescriptors(int pid, ImageContents image)
    {
        const uint O_CLOEXEC = 0x80000;
        var live = ProcOracle.Descriptors(pid);
        Assert.Equal(live.Select(d => d.Fd), image.Descriptors.Select(d => d.Fd));
        foreach (var (fd, descriptor) in live.Zip(image.Descriptors))
        {
            var (file, path) = image.Files[descriptor.FileObjRef];
            Assert.Equal(fd.Path, path);
            Assert.True(fd.Position == file.Position, $"fd {fd.Fd}: position {file.Position}, fdinfo {fd.Position}");
            Assert.True((fd.Flags & ~O_CLOEXEC) == (file.OpenFlags & ~O_CLOEXEC), $"fd {fd.Fd}: flags {Convert.ToString(file.OpenFlags, 8)}, fdinfo {Convert.ToString(fd.Flags, 8)}");
            Assert.Equal((fd.Flags & O_CLOEXEC) != 0, descriptor.CloseOnExec != 0);
        }
    }

    private static void AssertRegisters(int pid, ImageContents image)
    {
        var (registers, xstate) = ProcOracle.Registers(pid);
        CpuRecord c = image.Cpu;
        ulong[] saved =
        [
            c.R15, c.R14, c.R13, c.R12, c.Rbp, c.Rbx, c.R11, c.R10, c.R9, c.R8, c.Rax, c.Rcx, c.Rdx, c.Rsi, c.Rdi,
            c.OrigRax, c.Rip, c.Cs, c.Eflags, c.Rsp, c.Ss, c.FsBase, c.GsBase, c.Ds, c.Es, c.Fs, c.Gs,
        ];
        Assert.Equal(registers, saved);
        Assert.Equal(xstate.Length, image.Xstate.Length);
        Assert.True(xstate.AsSpan().SequenceEqual(image.Xstate), $"xsave area differs at byte {xstate.AsSpan().CommonPrefixLength(image.Xstate)}");
        Assert.Equal(BitConverter.ToUInt64(xstate, 512), image.XstateRecord.XstateFeatures);
    }

    [Theory]
    [InlineData("pause")]
    [InlineData("spin")]
    public void Live_vector_registers_are_in_the_image_xstate(string mode)
    {
        using var target = Start("ckpt_avx", mode);
        bool zmm = File.ReadAllLines(target.Log).Contains("VECTORS zmm");
        ImageContents image = CheckpointAndRead(target.Pid);
        Assert.Equal(mode == "pause" ? SyscallState.Restart : SyscallState.NotInSyscall, image.Thread.SyscallState);

        ulong features = image.XstateRecord.XstateFeatures;
        Assert.True((features & 0x4) != 0, $"XSTATE_BV 0x{features:x}: no AVX state");
        for (int r = 0; r < 16; r++)
        {
            Assert.Equal(Pattern(r, 0, 16), image.Xstate.AsSpan(160 + r * 16, 16).ToArray());             // xmm: legacy area
            Assert.Equal(Pattern(r, 16, 16), image.Xstate.AsSpan(ComponentOffset(2) + r * 16, 16).ToArray()); // upper ymm
        }
        if (zmm)
        {
            Assert.True((features & 0xe0) == 0xe0, $"XSTATE_BV 0x{features:x}: no AVX-512 state");
            for (int r = 0; r < 16; r++)
                Assert.Equal(Pattern(r, 32, 32), image.Xstate.AsSpan(ComponentOffset(6) + r * 32, 32).ToArray()); // upper zmm0-15
            for (int r = 16; r < 32; r++)
                Assert.Equal(Pattern(r, 0, 64), image.Xstate.AsSpan(ComponentOffset(7) + (r - 16) * 64, 64).ToArray()); // zmm16-31
        }
        target.RequirePass(); // and the live registers were not disturbed by the checkpoint
    }

    // ckpt_avx.c: byte i of register r is (r * 64 + i) * 7 + 1.
    private static byte[] Pattern(int register, int from, int count) =>
        Enumerable.Range(from, count).Select(i => (byte)((register * 64 + i) * 7 + 1)).ToArray();

    // Standard-format offset of an xsave component: CPUID leaf 0xD, sub-leaf = component, EBX.
    private static int ComponentOffset(int component) => X86Base.CpuId(0xD, component).Ebx;

    [Fact]
    public void Copy_on_write_pages_of_a_private_file_mapping_are_the_only_ones_saved()
    {
        string file = TempPath("cow");
        using var target = Start("ckpt_modes", "cow", file);
        ulong start = Convert.ToUInt64(File.ReadAllLines(target.Log).First(l => l.StartsWith("COW 0x"))[6..], 16);
        ImageContents image = CheckpointAndRead(target.Pid);

        VmaRecord vma = Assert.Single(image.Vmas, v => v.VmStart == start);
        Assert.Equal(VmaType.File, vma.VmaType);
        Assert.Equal(16ul * 4096, vma.VmEnd - vma.VmStart);
        Assert.Equal(file, image.Files[vma.FileObjRef].Path);
        var saved = image.Pages.Keys.Where(a => a >= vma.VmStart && a < vma.VmEnd).Select(a => (int)((a - start) / 4096)).Order();
        Assert.Equal([3, 10], saved);
        Assert.All(image.Pages[start + 3 * 4096], b => Assert.Equal(0x83, b));
        Assert.All(image.Pages[start + 10 * 4096], b => Assert.Equal(0x8a, b));
        // The other 14 pages are in the page table too (the workload read them): the file's own pages.
        ulong[] entries = ProcOracle.Pagemap(target.Pid, vma.VmStart, vma.VmEnd);
        Assert.All(entries, e => Assert.True((e & ProcOracle.Present) != 0, "the workload did not fault in every page"));
        target.RequirePass();
    }
}
