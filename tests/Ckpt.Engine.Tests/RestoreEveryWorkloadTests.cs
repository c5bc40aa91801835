using System.IO.Hashing;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Every checkpoint workload: checkpoint --kill, restore, then the same pid, the same
/// /proc/PID/maps (special mappings included), the same descriptors, one thread (nothing of the
/// engine left), an untouched image file, and the workload's own check passes.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class RestoreEveryWorkloadTests
{
    private const int SYS_pause = 34;

    public static TheoryData<string, string[], bool> Workloads => new()
    {
        // workload, arguments ("file" becomes a fresh temp path), waits in pause()
        { "ckpt_state", ["file"], true },
        { "ckpt_avx", ["pause"], true },
        { "ckpt_avx", ["spin"], false },
        { "ckpt_rseq", [], false },
        { "ckpt_modes", ["reserve"], true },
        { "ckpt_modes", ["cow", "file"], true },
        { "ckpt_eventfd", [], true },
        { "ckpt_privs", ["no-new-privs", "not-dumpable"], true },
    };

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Workload_comes_back_whole_and_passes(string workload, string[] arguments, bool waitsInPause)
    {
        using var target = Start(workload, arguments.Select(a => a == "file" ? TempPath(workload + ".file") : a).ToArray());
        int pid = target.Pid;
        string image = TempPath(workload + ".img");
        string[] maps, descriptors, vmFlags;
        try
        {
            if (waitsInPause) RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_pause);
            maps = RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps"));
            descriptors = Descriptors(pid);
            vmFlags = RestorableVmFlags(pid);
            RestoreTestCheckpoint.Checkpoint(pid, image, kill: true);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        ulong imageHash = XxHash64.HashToUInt64(File.ReadAllBytes(image));

        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try
        {
            Assert.Equal(maps, RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps")));
            Assert.Equal(descriptors, Descriptors(pid));
            Assert.Equal(vmFlags, RestorableVmFlags(pid));
            Assert.Single(Directory.GetDirectories($"/proc/{pid}/task"));
            Assert.Equal(imageHash, XxHash64.HashToUInt64(File.ReadAllBytes(image)));
            if (waitsInPause) RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_pause); // the interrupted pause() runs again
            target.RequirePass();
        }
        finally
        {
            if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);
        }
    }

    // The VmFlags a process chooses (mmap flags, protections, madvise); not the ones the kernel
    // keeps for itself, such as soft-dirty or accountable.
    private static readonly string[] ChosenVmFlags = ["rd", "wr", "ex", "sh", "gd", "nr", "dc", "wf", "dd", "hg", "nh"];

    internal static string[] RestorableVmFlags(int pid) =>
        ProcOracle.Smaps(pid).Select(m => $"{m.Start:x} {m.Name}: {string.Join(' ', m.VmFlags.Where(ChosenVmFlags.Contains))}").ToArray();

    internal static string[] Descriptors(int pid) =>
        Directory.GetFileSystemEntries($"/proc/{pid}/fd").Order().Select(fd => $"{Path.GetFileName(fd)} -> {new FileInfo(fd).LinkTarget}").ToArray();
}
