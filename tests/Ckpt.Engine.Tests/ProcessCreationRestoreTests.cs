using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>Process creation with a chosen pid and syscall injection into the new task, for real.</summary>
[Collection(RestoreCollection.Name)]
public sealed class ProcessCreationRestoreTests
{
    [Fact]
    public void NewProcessHasThePidAndIsStoppedAtExecWithOnlyTheProgramMapped()
    {
        int pid = RestoreTestProcesses.FreePid();
        ProcessCreation.CreateStoppedAtExec(pid, "/usr/bin/sleep", reparentToCaller: false);
        try
        {
            string status = File.ReadAllText($"/proc/{pid}/status");
            Assert.Contains($"\nPid:\t{pid}\n", status);
            // TracerPid is the id of the tracing thread: one of ours.
            string tracer = status.Split('\n').Single(l => l.StartsWith("TracerPid:"))["TracerPid:".Length..].Trim();
            Assert.True(Directory.Exists($"/proc/{Environment.ProcessId}/task/{tracer}"), $"tracer {tracer} is not a thread of the test");
            Assert.Contains("State:\tt (tracing stop)", status);
            Assert.Equal("/usr/bin/sleep", Path.GetFullPath(new FileInfo($"/proc/{pid}/exe").LinkTarget!));

            var names = MapsLine.ReadAll(pid).Select(m => m.Name).Distinct().ToHashSet();
            names.RemoveWhere(n => n is "/usr/bin/sleep" or "[stack]" or "[vdso]" or "[vvar]" or "[vvar_vclock]" or "[vsyscall]" or "");
            names.RemoveWhere(n => n.Contains("/ld-linux-x86-64.so"));
            Assert.Empty(names);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void PidInUseIsRefusedNamingTheHolderAndLeavesNoProcess()
    {
        int pid = RestoreTestProcesses.StartSleeper();
        try
        {
            var error = Assert.Throws<PidInUseException>(() => ProcessCreation.CreateStoppedAtExec(pid, "/usr/bin/sleep", false));
            Assert.Equal("sleep", error.HolderComm);
            Assert.Contains($"pid {pid} is in use by 'sleep'", error.Message);
            RestoreTestProcesses.AssertNoUnreapedChildren();
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void MissingProgramFailsAndLeavesNoProcess()
    {
        int pid = RestoreTestProcesses.FreePid();
        var error = Assert.Throws<InvalidOperationException>(
            () => ProcessCreation.CreateStoppedAtExec(pid, "/nonexistent/program", false));
        Assert.Contains("/nonexistent/program", error.Message);
        RestoreTestProcesses.WaitUntilGone(pid);
        RestoreTestProcesses.AssertNoUnreapedChildren();
    }

    [Fact]
    public void SyscallInjectorRunsCallsInTheNewTask()
    {
        int pid = RestoreTestProcesses.FreePid();
        ProcessCreation.CreateStoppedAtExec(pid, "/usr/bin/sleep", false);
        try
        {
            var syscalls = SyscallInjector.AtExecStop(Tracee.Adopt(pid));
            Assert.Equal(pid, syscalls.Call("getpid", 39));

            const ulong address = 0x5a5a_0000_0000;
            long mapped = syscalls.Call("mmap", 9, address, 8192, 3, 0x22 | 0x100000, ulong.MaxValue, 0);
            Assert.Equal((long)address, mapped);
            ProcessMemory.Write(pid, address + 4096, "hello"u8);
            Assert.Equal("hello"u8.ToArray(), ProcessMemory.ReadExact(pid, address + 4096, 5));
            Assert.Contains(MapsLine.ReadAll(pid), m => m.Start == address && m.End == address + 8192 && m.Permissions == "rw-p");

            // A failing call reports the syscall, the errno and the pid.
            var error = Assert.Throws<SyscallException>(() => syscalls.Call("mmap", 9, address, 4096, 3, 0x22 | 0x100000, ulong.MaxValue, 0));
            Assert.Equal(Errno.EEXIST, error.Errno);
            Assert.Equal(pid, error.Pid);
            Assert.Contains("mmap", error.Message);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }
}
