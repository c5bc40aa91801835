using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Mapped memfds and deleted files (Memory/UnlinkedFileMappings, tests/workloads/ckpt_memfd_mapped.c):
/// a sealed 64 MiB memfd open as fd 3 and mapped twice (read-write and read-execute, the .NET runtime's
/// double mapping) and once more read-only, a memfd mapped with no descriptor left, a deleted file mapped private with a dirty
/// page. The image holds each file once, sparse, as the one file object of its descriptor and mappings;
/// after `checkpoint --kill` + `restore` the views and the descriptor are one file again (a write
/// through each is seen through the others), with name, size, seals and contents.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class MappedUnlinkedFileCheckpointRestoreTests : IDisposable
{
    private const string Dual = "/memfd:ckpt-dual (deleted)", Only = "/memfd:ckpt-only (deleted)";
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-memfd-mapped-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private Target StartMapping()
    {
        var target = Start("ckpt_memfd_mapped", _directory);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, 34); // pause
        return target;
    }

    [Fact]
    public void The_image_holds_each_mapped_file_once_as_the_object_of_its_descriptor_and_mappings_and_the_target_runs_on()
    {
        using var target = StartMapping();
        ulong[] maps = File.ReadLines(target.Log).First(l => l.StartsWith("MAPS ")).Split(' ')[1..].Select(a => Convert.ToUInt64(a, 16)).ToArray();
        string image = TempPath("memfd-mapped.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));

        ProcessImage process = ReadImage(image).Image!.Processes[0];
        VmaImage At(ulong address) => process.Memory.Vmas.Single(v => v.Record.VmStart == address);
        FileImage dual = process.FileTable.Files[process.FileTable.Descriptors.Single(d => d.Fd == 3).FileObjRef];
        // One object: the descriptor's file is the very one both views map (the reader keeps one FileImage per objref).
        Assert.Same(dual, At(maps[0]).File);
        Assert.Same(dual, At(maps[1]).File);
        Assert.Same(dual, At(maps[4]).File); // the read-only view, mapped through an open file since closed
        Assert.Equal((FileKind.Memfd, Dual), (dual.Record.Kind, dual.Path));
        Assert.Equal((FileSeals.Shrink | FileSeals.Grow, 64L << 20), (dual.Unlinked!.Record.Seals, dual.Unlinked.Record.FileSize));
        Assert.Equal([0ul, 40ul << 20], dual.Unlinked.Chunks.SelectMany(c => c.Addresses)); // sparse: two pages of 16384
        Assert.Equal((VmaType.SharedFile, 0u), (At(maps[0]).Record.VmaType, (uint)At(maps[0]).Chunks.Count));

        FileImage only = At(maps[2]).File!;
        Assert.Equal((FileKind.Memfd, Only, 2 * 4096L), (only.Record.Kind, only.Path, only.Unlinked!.Record.FileSize));
        Assert.DoesNotContain(process.FileTable.Descriptors, d => d.FileObjRef == only.Record.ObjRef);

        VmaImage privateMapping = At(maps[3]);
        Assert.Equal((VmaType.File, FileKind.DeletedFile, Path.Combine(_directory, "private") + " (deleted)"),
            (privateMapping.Record.VmaType, privateMapping.File!.Record.Kind, privateMapping.File.Path));
        // The dirty page is the mapping's own (anonymous) page; the file keeps its three pages.
        Assert.Equal([maps[3] + 4096], privateMapping.Chunks.SelectMany(c => c.Addresses));
        Assert.Equal(3, privateMapping.File.Unlinked!.Chunks.Sum(c => c.Addresses.Length));
        target.RequirePass(); // the checkpoint changed nothing
    }

    [Fact]
    public void Mapped_memfds_and_a_deleted_file_come_back_as_one_file_per_object_after_checkpoint_kill_and_restore()
    {
        using var target = StartMapping();
        string[] flagsBefore = MemfdVmFlags(target.Pid);
        Assert.Equal(4, flagsBefore.Length); // rw, rx, the read-only view, ckpt-only
        string image = TempPath("memfd-mapped-kill.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        var restore = RunCli(["restore", "--input", image]);
        Assert.True(restore.ExitCode == 0, restore.Stderr);
        // The same VM flags: a view that could be made writable (mw) still can, the read-only one still cannot.
        Assert.Equal(flagsBefore, MemfdVmFlags(target.Pid));
        RequireRestoredAndPass(target, restore);
    }

    /// <summary>"START-END NAME VmFlags: ..." of every memfd mapping, from /proc/PID/smaps.</summary>
    private static string[] MemfdVmFlags(int pid)
    {
        var result = new List<string>();
        string? mapping = null;
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            if (System.Text.RegularExpressions.Regex.Match(line, @"^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$") is { Success: true } header)
                mapping = header.Groups[2].Value.StartsWith("/memfd:", StringComparison.Ordinal) ? $"{header.Groups[1].Value} {header.Groups[2].Value}" : null;
            else if (line.StartsWith("VmFlags:", StringComparison.Ordinal) && mapping is not null)
                result.Add($"{mapping} {line}");
        }
        return [.. result];
    }
}
