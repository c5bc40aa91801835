using System.Text;
using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Descriptors in flight (SCM_RIGHTS) in unix socket queues (issue 12; tests/workloads/ckpt_scm_rights.c): a stream pair
/// and a datagram pair whose queued messages carry a regular file at an offset, a pipe's write end whose read end the
/// process keeps, an eventfd the process holds too, and files only in flight. After `checkpoint --kill` + restore the
/// workload receives the same bytes, boundaries and working descriptors (and a file only in flight replaced since the
/// checkpoint is refused at restore as a descriptor's would be); a checkpoint without --kill leaves the queues
/// as they were and the engine holds none of the files it peeked; a memfd only in flight (a kind not saved in flight)
/// is refused by name, the engine's copy is closed and the target runs on.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class InFlightDescriptorTests
{
    private const int SYS_pause = 34;

    private static SocketImage Socket(FileTableImage table, int fd) =>
        Assert.IsType<SocketImage>(table.Files[table.Descriptors.Single(d => d.Fd == fd).FileObjRef].Socket);

    private static FileImage File(FileTableImage table, int fd) => table.Files[table.Descriptors.Single(d => d.Fd == fd).FileObjRef];

    [Fact]
    public void Descriptors_in_flight_on_stream_and_datagram_pairs_come_back_working_after_checkpoint_kill()
    {
        string file = TempPath("in-flight.txt");
        using var target = Start("ckpt_scm_rights", file);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("in-flight.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);

        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        FileTableImage table = contents.Image!.Processes[0].FileTable;
        // The stream: a chunk ends where a segment carrying descriptors ends (a read of "plain-before" goes on into "F" and stops there).
        SocketImage stream = Socket(table, 3);
        Assert.Equal(["plain-beforeF", "P", "plain-after"], stream.Queue.Select(Encoding.ASCII.GetString));
        Assert.Equal([0, 1], stream.InFlight.Keys.Order());
        FileImage streamFile = Assert.Single(stream.InFlight[0]);
        Assert.Equal((FileKind.Regular, file, 5L), (streamFile.Record.Kind, streamFile.Path, streamFile.Record.Position));
        Assert.Equal([FileKind.Pipe, FileKind.Eventfd], stream.InFlight[1].Select(f => f.Record.Kind));
        Assert.Same(File(table, 7).Pipe, stream.InFlight[1][0].Pipe); // the write end in flight, the read end at fd 7: one pipe
        Assert.Same(File(table, 9), stream.InFlight[1][1]); // the eventfd the process holds too: one file object
        SocketImage datagrams = Socket(table, 5);
        Assert.Equal(["d1", "d2", "d3"], datagrams.Queue.Select(Encoding.ASCII.GetString));
        Assert.Equal((file, 9L), (datagrams.InFlight[1][0].Path, datagrams.InFlight[1][0].Record.Position));
        Assert.Equal(7UL, datagrams.InFlight[2][0].Eventfd!.Value.Count);

        var (shown, text, _) = RunCli(["show", image]);
        Assert.Equal(0, shown);
        Assert.Contains($"3 queued (25 bytes), 3 descriptors in flight ({file}, pipe:[", text);

        RestoreAndRequirePass(target, image);
        System.IO.File.Delete(file);
    }

    [Fact]
    public void A_file_only_in_flight_that_was_replaced_since_is_refused_at_restore_and_nothing_is_left_running()
    {
        string file = TempPath("in-flight-replaced.txt");
        using var target = Start("ckpt_scm_rights", file);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("in-flight-replaced.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        // Another file under the same name: the file in flight (its sender closed it) is checked like a descriptor's.
        string replacement = file + ".new";
        System.IO.File.WriteAllText(replacement, "someone else's file");
        System.IO.File.Move(replacement, file, overwrite: true);

        var refused = RunCli(["restore", "--input", image]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains($"file {file} of fd 3 was replaced by another file since the checkpoint", refused.Stderr);
        Assert.False(IsAlive(target.Pid), $"process {target.Pid} runs after a refused restore");
        System.IO.File.Delete(file);
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_descriptors_in_flight_queued_and_the_engine_keeps_no_copy()
    {
        string file = TempPath("in-flight-running.txt");
        using var target = Start("ckpt_scm_rights", file);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string pipe = new FileInfo($"/proc/{target.Pid}/fd/7").LinkTarget!;
        string image = TempPath("in-flight-running.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, Kill: false));

        Assert.Equal(2, Socket(ReadImage(image).Image!.Processes[0].FileTable, 3).InFlight.Count);
        // The peeks installed the files in this process (the engine): every copy is closed again.
        Assert.DoesNotContain(OwnDescriptorTargets(), t => t == file || t == pipe);
        target.RequirePass(); // the workload receives every message with its descriptors itself
        System.IO.File.Delete(file);
    }

    [Fact]
    public void A_memfd_only_in_flight_is_refused_by_name_its_copy_is_closed_and_the_target_runs_on()
    {
        using var target = Start("ckpt_scm_rights", TempPath("unused.txt"), "memfd");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string memfd = $"/memfd:ckpt-in-flight-{target.Pid} (deleted)";
        string image = TempPath("in-flight-memfd.img");
        CheckpointRefusedException refusal;
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            refusal = Assert.Throws<CheckpointRefusedException>(() => Checkpointer.Run(new CheckpointOptions(target.Pid, output, Kill: true)));
        Assert.Contains($"fd 3 of process {target.Pid}: descriptor 1 in flight in queued message 1 ({memfd})", refusal.Message);
        Assert.Contains("a memfd is not saved in flight on its own", refusal.Message);
        Assert.DoesNotContain(memfd, OwnDescriptorTargets());
        target.RequirePass(); // untouched: it receives the memfd and reads it
    }

    private static List<string> OwnDescriptorTargets() =>
        Directory.GetFileSystemEntries("/proc/self/fd").Select(p => new FileInfo(p).LinkTarget ?? "").ToList();
}
