using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Issue 13, first slice: images edited with the image library to lie about memory, registers,
/// ids and files are refused before any process exists (or, for a file swapped afterwards, before
/// it is kept); limits, no_new_privs and dumpable come back no more privileged than recorded.
/// </summary>
[Collection(RestoreCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed unsafe partial class RestoreHardeningTests : IDisposable
{
    private const int SYS_pause = 34, SYS_clock_nanosleep = 230;
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-hardening-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private int CheckpointSleeperAndKill(string image, string program = "/usr/bin/sleep", params string[] arguments)
    {
        int pid = arguments.Length == 0 ? RestoreTestProcesses.StartSleeper() : RestoreTestProcesses.Spawn("/dev/null", program, arguments);
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_clock_nanosleep);
            RestoreTestCheckpoint.Checkpoint(pid, image);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        return pid;
    }

    private static void AssertNothingCreated(int pid)
    {
        Assert.False(Directory.Exists($"/proc/{pid}"));
        RestoreTestProcesses.AssertNoUnreapedChildren();
    }

    // ---- memory ----

    [Fact]
    public void MappingBelowMmapMinAddrIsRefusedNamingTheRange()
    {
        string image = Path.Combine(_directory, "page0.img");
        int pid = CheckpointSleeperAndKill(image);
        ulong end = 0;
        ImageEdit.Edit(image, bytes => Assert.Equal(1, ImageEdit.Patch<VmaRecord>(bytes, (vma, _) =>
        {
            if (end != 0) return null;
            end = vma.VmEnd;
            vma.VmStart = 0; // the first mapping now starts at page 0
            return vma;
        })));
        var error = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains($"0x0-0x{end:x}", error.Message);
        Assert.Contains("mmap_min_addr", error.Message);
        AssertNothingCreated(pid);
    }

    // ---- registers and ids ----

    [Theory]
    [InlineData(0xffff_ffff_8100_0000ul)] // kernel text
    [InlineData(0x0000_8000_0000_0000ul)] // non-canonical (4-level paging)
    [InlineData(0x0000_7fff_ffff_f000ul)] // the first address above user space
    public void InstructionPointerOutsideUserSpaceIsRefusedWithExitCode5(ulong rip)
    {
        string image = Path.Combine(_directory, "rip.img");
        int pid = CheckpointSleeperAndKill(image);
        ImageEdit.Edit(image, bytes => ImageEdit.Patch<CpuRecord>(bytes, (cpu, _) => { cpu.Rip = rip; return cpu; }));
        var error = Assert.Throws<ImageFormatException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Equal(RecordType.Cpu, error.Record);
        Assert.Contains($"thread {pid}'s instruction pointer 0x{rip:x}", error.Message);
        AssertNothingCreated(pid);

        var cli = CheckpointTestSupport.RunCli(["restore", "--input", image]);
        Assert.Equal(5, cli.ExitCode);
        Assert.Contains("instruction pointer", cli.Stderr);
        AssertNothingCreated(pid);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void PidOfZeroOrBelowIsRefusedWithExitCode5(int bad)
    {
        string image = Path.Combine(_directory, "pid.img");
        int pid = CheckpointSleeperAndKill(image);
        ImageEdit.Edit(image, bytes =>
        {
            ImageEdit.Patch<TaskIdsRecord>(bytes, (ids, _) => { ids.Pid = bad; ids.Tgid = bad; ids.NamespacePids[0] = bad; return ids; });
            ImageEdit.Patch<TaskRecord>(bytes, (task, _) => { task.Pid = bad; task.Tgid = bad; return task; });
            ImageEdit.Patch<ThreadRecord>(bytes, (thread, _) => { thread.Tid = bad; return thread; });
        });
        var error = Assert.Throws<ImageFormatException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Equal(RecordType.TaskIds, error.Record);
        Assert.Contains("invalid id", error.Message);
        AssertNothingCreated(pid);
        Assert.Equal(5, CheckpointTestSupport.RunCli(["restore", "--input", image]).ExitCode);
    }

    // ---- files ----

    /// <summary>An image of ckpt_state holding <paramref name="data"/> open; returns the pid and that file's fd.</summary>
    private (int Pid, int Fd) CheckpointStateWorkload(string data, string image)
    {
        int pid;
        using (var target = CheckpointTestSupport.Start("ckpt_state", data))
        {
            pid = target.Pid;
            RestoreTestCheckpoint.Checkpoint(pid, image);
        }
        RestoreTestProcesses.WaitUntilGone(pid);
        using var stream = File.OpenRead(image);
        ProcessImage process = ImageModelReader.Read(new ImageReader(stream)).Processes[0];
        int fd = process.FileTable.Descriptors.First(d => process.FileTable.Files[d.FileObjRef].Path == data).Fd;
        return (pid, fd);
    }

    [Theory]
    [InlineData(0x40u, "O_CREAT")]
    [InlineData(0x80u, "O_EXCL")]
    [InlineData(0x200u, "O_TRUNC")]
    [InlineData(0x410000u, "O_TMPFILE")]
    public void OpenFlagsACheckpointNeverRecordsAreRefusedNamingTheFd(uint flag, string name)
    {
        string data = Path.Combine(_directory, "data"), image = Path.Combine(_directory, "flags.img");
        var (pid, fd) = CheckpointStateWorkload(data, image);
        byte[] before = File.ReadAllBytes(data);
        // Every file object of that path (the workload also maps the file: a FILE of its own).
        ImageEdit.Edit(image, bytes => Assert.NotEqual(0, ImageEdit.Patch<FileRecord>(bytes, (file, offset) =>
            ImageEdit.Trailing<FileRecord>(bytes, offset, file.PathLength) == data ? file with { OpenFlags = file.OpenFlags | flag } : null)));
        var error = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains($"fd {fd} ({data})", error.Message);
        Assert.Contains(name, error.Message);
        Assert.Equal(before, File.ReadAllBytes(data)); // neither truncated nor recreated
        AssertNothingCreated(pid);
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MakeFifo(string path, uint mode);

    [Fact]
    public void RegularFileThatIsNowAFifoOrASymlinkIsRefusedWithoutBlocking()
    {
        string data = Path.Combine(_directory, "data"), image = Path.Combine(_directory, "fifo.img");
        var (pid, fd) = CheckpointStateWorkload(data, image);
        File.Move(data, data + ".moved");
        Assert.Equal(0, MakeFifo(data, 0x1b6));
        var restore = Task.Run(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.True(((IAsyncResult)restore).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)), "the restore blocked on the FIFO");
        var error = Assert.Throws<RestoreRefusedException>(() => restore.GetAwaiter().GetResult());
        Assert.Contains($"fd {fd}: {data} is a FIFO now, the image recorded a regular file", error.Message);
        AssertNothingCreated(pid);

        File.Delete(data);
        File.CreateSymbolicLink(data, data + ".moved"); // the very file, behind a link the checkpoint never saw
        var link = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains($"fd {fd}: {data} is a symbolic link now", link.Message);
        AssertNothingCreated(pid);
    }

    // ---- flags and limits ----

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void NoNewPrivsAndDumpableComeBackAsTheyWere(bool noNewPrivs, bool notDumpable)
    {
        string[] arguments = [.. noNewPrivs ? ["no-new-privs"] : Array.Empty<string>(), .. notDumpable ? ["not-dumpable"] : Array.Empty<string>()];
        using var target = CheckpointTestSupport.Start("ckpt_privs", arguments);
        string image = Path.Combine(_directory, "privs.img");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        RestoreTestCheckpoint.Checkpoint(target.Pid, image, kill: true);
        RestoreTestProcesses.KillAndReap(target.Pid);
        using (var stream = File.OpenRead(image))
        {
            TaskRecord task = ImageModelReader.Read(new ImageReader(stream)).Processes[0].Task;
            Assert.Equal(noNewPrivs ? 1 : 0, task.NoNewPrivileges);
            Assert.Equal(notDumpable ? 1 : 2, task.Dumpable); // PR_GET_DUMPABLE + 1
        }

        Assert.Equal(target.Pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try
        {
            Assert.Contains($"NoNewPrivs:\t{(noNewPrivs ? 1 : 0)}", File.ReadAllText($"/proc/{target.Pid}/status"));
            RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
            target.RequirePass(); // the workload checks PR_GET_NO_NEW_PRIVS and PR_GET_DUMPABLE itself
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(target.Pid);
        }
    }

    private static readonly (int Resource, string Name)[] SmallLimits =
        [(12, "Max msgqueue size"), (8, "Max locked memory"), (11, "Max pending signals"), (7, "Max open files")];

    /// <summary>A limit whose hard value here (inherited by a restored process) is finite, and that value.</summary>
    private static (int Resource, ulong Hard) FiniteLimit()
    {
        string[] lines = File.ReadAllLines("/proc/self/limits");
        foreach (var (resource, name) in SmallLimits)
        {
            string[] fields = lines.First(l => l.StartsWith(name, StringComparison.Ordinal))[name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields[1] != "unlimited" && ulong.Parse(fields[1]) < 1 << 20) return (resource, ulong.Parse(fields[1]));
        }
        throw new InvalidOperationException("no small finite hard limit to raise");
    }

    private static void RaiseLimit(string image, int resource, ulong value) =>
        ImageEdit.Edit(image, bytes => Assert.Equal(1, ImageEdit.Patch<SignalRecord>(bytes, (signal, _) =>
        {
            signal.RlimitCurrent[resource] = value;
            signal.RlimitMaximum[resource] = value;
            return signal;
        })));

    private static ulong HardLimitOf(int pid, int resource)
    {
        string name = SmallLimits.First(l => l.Resource == resource).Name;
        string line = File.ReadAllLines($"/proc/{pid}/limits").First(l => l.StartsWith(name, StringComparison.Ordinal));
        return ulong.Parse(line[name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    [Fact]
    public void HardLimitIsNeverRaisedAboveWhatTheRecordedUserCouldSet()
    {
        var (resource, hard) = FiniteLimit();
        ulong raised = hard * 2;

        // A nobody process: its image may not raise the hard limit (no CAP_SYS_RESOURCE).
        string image = Path.Combine(_directory, "nobody.img");
        int pid = CheckpointSleeperAndKill(image, "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "/usr/bin/sleep", "1000");
        File.Copy(image, image + ".as-recorded");
        RaiseLimit(image, resource, raised);
        var error = Assert.Throws<RestoreException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Equal($"thread {pid}: limits, scheduling, no_new_privs", error.Step);
        Assert.Equal(Errno.EPERM, Assert.IsType<SyscallException>(error.InnerException).Errno);
        Assert.Contains($"hard {raised}) with the restored credentials", error.Message);
        RestoreTestProcesses.WaitUntilGone(pid);

        // The same image as recorded comes back, as nobody, with its limits.
        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image + ".as-recorded")).Pid);
        try
        {
            Assert.Contains("Uid:\t65534\t65534\t65534\t65534", File.ReadAllText($"/proc/{pid}/status"));
            Assert.Equal(hard, HardLimitOf(pid, resource));
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }

        // A root image with CAP_SYS_RESOURCE may raise it, if the engine itself holds CAP_SYS_RESOURCE
        // (a restore never grants what its user does not have: in a container without it, it is refused too).
        string rootImage = Path.Combine(_directory, "root.img");
        int rootPid = CheckpointSleeperAndKill(rootImage);
        RaiseLimit(rootImage, resource, raised);
        const int CAP_SYS_RESOURCE = 24;
        string capEff = File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal))[7..].Trim();
        if ((Convert.ToUInt64(capEff, 16) & (1ul << CAP_SYS_RESOURCE)) == 0)
        {
            var refused = Assert.Throws<RestoreException>(() => Restorer.Restore(new RestoreOptions(rootImage)));
            Assert.Equal(Errno.EPERM, Assert.IsType<SyscallException>(refused.InnerException).Errno);
            RestoreTestProcesses.WaitUntilGone(rootPid);
            return;
        }
        Assert.Equal(rootPid, Restorer.Restore(new RestoreOptions(rootImage)).Pid);
        try
        {
            Assert.Equal(raised, HardLimitOf(rootPid, resource));
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(rootPid);
        }
    }
}
