namespace Ckpt.Engine.Tests;

/// <summary>
/// membarrier(2) registrations (Memory/Membarrier.cs, tests/workloads/ckpt_membarrier.c: private
/// expedited, and sync-core, rseq and global expedited where the kernel has them): the image's
/// MEMBARRIER record holds what MEMBARRIER_CMD_GET_REGISTRATIONS reported, and after
/// `checkpoint --kill` + `restore` the process reports the same registrations and its expedited
/// barriers work (unregistered, they fail with EPERM).
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class MembarrierCheckpointRestoreTests
{
    [Fact]
    public void Registrations_are_saved_and_registered_again_after_checkpoint_kill_and_restore()
    {
        using var target = Start("ckpt_membarrier");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, 34); // pause
        uint registered = Convert.ToUInt32(File.ReadLines(target.Log).First(l => l.StartsWith("REGISTERED ")).Split(' ')[1], 16);
        Assert.True((registered & 0x10) != 0, $"registrations 0x{registered:x} lack private expedited");
        string image = TempPath("membarrier.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(registered, (uint)ReadImage(image).Image!.Processes[0].Memory.Membarrier);
        RestoreAndRequirePass(target, image);
    }
}
