using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;

namespace Ckpt.Engine.Tests;

/// <summary>Each refusal and failure path: a clear error, and no process left behind.</summary>
[Collection(RestoreCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RestoreRefusalTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-refusal-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>Checkpoints a process started by <paramref name="start"/> and kills it; returns its pid.</summary>
    private int CheckpointAndKill(string image, Func<int> start, string? kernelRelease = null, uint? architecture = null)
    {
        int pid = start();
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 230);
            RestoreTestCheckpoint.Checkpoint(pid, image, kernelRelease, architecture);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        return pid;
    }

    [Fact]
    public void PidInUseIsRefusedNamingTheHolder()
    {
        string image = Path.Combine(_directory, "a.img");
        int pid = RestoreTestProcesses.StartSleeper();
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 230);
            RestoreTestCheckpoint.Checkpoint(pid, image); // the original stays alive (stopped)
            string startBefore = File.ReadAllText($"/proc/{pid}/stat");
            var error = Assert.Throws<PidInUseException>(() => Restorer.Restore(new RestoreOptions(image)));
            Assert.Contains($"pid {pid} is in use by 'sleep'", error.Message);
            Assert.Equal(startBefore.Split(' ')[21], File.ReadAllText($"/proc/{pid}/stat").Split(' ')[21]); // same process
            RestoreTestProcesses.AssertNoUnreapedChildren();
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void OtherKernelReleaseIsRefusedUnlessForced()
    {
        string image = Path.Combine(_directory, "k.img");
        int pid = CheckpointAndKill(image, RestoreTestProcesses.StartSleeper, kernelRelease: "5.4.0-other");
        var error = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains("5.4.0-other", error.Message);
        Assert.Contains("--force", error.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));

        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image, Force: true)).Pid);
        RestoreTestProcesses.WaitUntilInSyscall(pid, 230);
        RestoreTestProcesses.KillAndReap(pid);
    }

    [Fact]
    public void OtherArchitectureIsRefused()
    {
        string image = Path.Combine(_directory, "arch.img");
        int pid = CheckpointAndKill(image, RestoreTestProcesses.StartSleeper, architecture: 183 /* EM_AARCH64 */);
        var error = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains("architecture 183", error.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));
    }

    [Fact]
    public void ChangedOrMissingMappedFileIsRefusedNamingIt()
    {
        string program = Path.Combine(_directory, "mysleep");
        File.Copy("/usr/bin/sleep", program);
        File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        string image = Path.Combine(_directory, "f.img");
        int pid = CheckpointAndKill(image, () => RestoreTestProcesses.Spawn("/dev/null", program, "1000"));

        File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.AppendAllText(program, "changed");
        var changed = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains(program, changed.Message);
        Assert.Contains("changed since the checkpoint", changed.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));

        File.Delete(program);
        var missing = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains(program, missing.Message);
        Assert.Contains("missing", missing.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));
    }

    [Fact]
    public void MissingOrReplacedFileOfADescriptorIsRefusedNamingIt()
    {
        string data = Path.Combine(_directory, "data");
        string image = Path.Combine(_directory, "fd.img");
        int pid;
        using (var target = CheckpointTestSupport.Start("ckpt_state", data))
        {
            pid = target.Pid;
            RestoreTestCheckpoint.Checkpoint(pid, image);
        }
        RestoreTestProcesses.WaitUntilGone(pid);

        File.Move(data, data + ".moved");
        var missing = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains(data, missing.Message);
        Assert.Contains("missing", missing.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));

        File.WriteAllText(data, "another file with the same name");
        var replaced = Assert.Throws<RestoreRefusedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains(data, replaced.Message);
        Assert.Contains("replaced", replaced.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));
    }

    /// <summary>
    /// A damaged image found during an overlapped restore kills the half-restored process and reports
    /// the damage with its offset; nothing is left running. The checksum is hashed on another core
    /// while the process is built: the phases show the process was created and rebuilt before the
    /// mismatch stopped it, just before its release.
    /// </summary>
    [Fact]
    public void DamagedImageFoundDuringOverlappedRestoreKillsTheHalfRestoredProcess()
    {
        string image = Path.Combine(_directory, "c.img");
        int pid = CheckpointAndKill(image, RestoreTestProcesses.StartSleeper);
        byte[] bytes = File.ReadAllBytes(image);
        bytes[bytes.Length / 2] ^= 0xff; // inside page contents: only the checksum can tell
        File.WriteAllBytes(image, bytes);
        var phases = new List<string>();
        var error = Assert.Throws<ImageFormatException>(() => Restorer.Restore(new RestoreOptions(image), phases.Add));
        Assert.Contains("checksum", error.Message);
        Assert.Equal(Ckpt.Image.Records.RecordType.Tail, error.Record);
        long tailOffset = bytes.Length - 32; // the checksum covers everything before the tail record
        Assert.Equal(tailOffset, error.Offset);
        Assert.Contains($"offset {tailOffset}", error.Message);
        Assert.Contains("create", phases);
        Assert.Contains("credentials", phases);   // the process was built...
        Assert.DoesNotContain("resume", phases);  // ...and never released
        RestoreTestProcesses.WaitUntilGone(pid);
        RestoreTestProcesses.AssertNoUnreapedChildren();
    }

    [Fact]
    public void FailureAfterCreationKillsTheTaskAndNamesStepSyscallAndErrno()
    {
        string workingDirectory = Directory.CreateDirectory(Path.Combine(_directory, "cwd")).FullName;
        string image = Path.Combine(_directory, "cwd.img");
        int pid = CheckpointAndKill(image, () => RestoreTestProcesses.SpawnIn(workingDirectory, "/dev/null", "/usr/bin/sleep", "1000"));
        Directory.Delete(workingDirectory);

        var error = Assert.Throws<RestoreException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Equal("task state", error.Step);
        var syscall = Assert.IsType<SyscallException>(error.InnerException);
        Assert.Equal(Errno.ENOENT, syscall.Errno);
        Assert.Equal(pid, syscall.Pid);
        Assert.Contains($"chdir({workingDirectory})", error.Message);
        RestoreTestProcesses.WaitUntilGone(pid);
    }
}
