using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>
/// <see cref="SyscallBatch"/> in a real new task (stopped at its exec, as a restore has it): results
/// in order, more calls than one round holds, a call taking an earlier call's result (in the same
/// round and from an earlier round), a call that may fail, and a call that must succeed and fails:
/// named, and the calls after it not made.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SyscallBatchTests
{
    private const long SYS_getpid = 39, SYS_umask = 95, SYS_dup = 32, SYS_close = 3, SYS_openat = 257;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    [Fact]
    public void Calls_run_in_order_across_rounds_and_take_earlier_results()
    {
        WithNewTask((pid, syscalls, scratch) =>
        {
            var batch = new SyscallBatch(syscalls, scratch);
            int opened = batch.Add("openat of /etc/hostname", SYS_openat, AT_FDCWD, scratch.PutString("/etc/hostname"), 0, 0);
            var getpids = Enumerable.Range(0, 300).Select(i => batch.Add($"getpid {i}", SYS_getpid)).ToList();
            int duplicate = batch.Add("dup of the opened file", SYS_dup, BatchArgument.Result(opened)); // a later round
            int closed = batch.Add("close of the duplicate", SYS_close, BatchArgument.Result(duplicate));
            int badClose = batch.AddMayFail("close of fd 999", SYS_close, 999);
            long[] results = batch.Run();
            Assert.Equal(304, results.Length);
            Assert.Equal(-Errno.EBADF, results[badClose]);
            Assert.All(getpids, i => Assert.Equal(pid, results[i]));
            Assert.True(results[opened] >= 0);
            Assert.Equal(results[opened] + 1, results[duplicate]);
            Assert.Equal(0, results[closed]);
            Assert.Equal(-Errno.EBADF, syscalls.CallRaw(SYS_close, (ulong)results[duplicate])); // closed by the batch
            Assert.Equal(0, syscalls.CallRaw(SYS_close, (ulong)results[opened]));
            Assert.Equal(0, batch.Count); // forgotten once run
        });
    }

    [Fact]
    public void A_call_that_may_fail_goes_on_and_one_that_must_succeed_stops_the_batch_naming_it()
    {
        WithNewTask((pid, syscalls, scratch) =>
        {
            long umaskBefore = syscalls.Call("umask", SYS_umask, 0x12 /* 022 */);
            var batch = new SyscallBatch(syscalls, scratch);
            batch.AddMayFail("close of fd 999", SYS_close, 999); // fails, and the batch goes on
            batch.Add("getpid", SYS_getpid);
            batch.Add("close of fd 998", SYS_close, 998);
            batch.Add("umask(077)", SYS_umask, 0x3f); // never made
            var error = Assert.Throws<SyscallException>(() => batch.Run());
            Assert.Equal("close of fd 998", error.Syscall);
            Assert.Equal(Errno.EBADF, error.Errno);
            Assert.Equal(pid, error.Pid);
            Assert.Equal(0x12 /* 022 */, syscalls.Call("umask", SYS_umask, (ulong)umaskBefore)); // still what the batch found
            // The task is usable afterwards, by batches and single calls alike.
            int again = batch.Add("getpid", SYS_getpid);
            Assert.Equal(pid, batch.Run()[again]);
            Assert.Equal(pid, syscalls.Call("getpid", SYS_getpid));
        });
    }

    private static void WithNewTask(Action<int, SyscallInjector, ScratchArea> test)
    {
        int pid = RestoreTestProcesses.FreePid();
        ProcessCreation.CreateStoppedAtExec(pid, "/usr/bin/sleep", false);
        try
        {
            var syscalls = SyscallInjector.AtExecStop(Tracee.Adopt(pid));
            ScratchArea scratch = ScratchArea.Map(syscalls, []);
            test(pid, syscalls, scratch);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }
}
