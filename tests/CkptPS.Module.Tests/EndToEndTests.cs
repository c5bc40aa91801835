using System.Management.Automation;
using Ckpt.Image.Records;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>
/// The three command lines of DESIGN.md and the issue's scenarios, through the real engine
/// (artifacts/CkptPS/ckpt) against real processes: ptrace, /proc, clone3 with set_tid.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class EndToEndTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();
    private readonly List<int> restoredPids = [];

    [Fact]
    public void Checkpoint_Process_Id_Path_writes_a_valid_image_and_the_process_runs_on()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "app.ckpt");
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image).AssertClean();
        Assert.Empty(result.Output);
        Assert.True(File.Exists(image));
        Assert.Single(Directory.EnumerateFiles(scratch)); // no partial file left behind
        Assert.True(target.IsAlive);
        CheckpointProcessTests.AssertNotTracedOrStopped(target.Pid); // running again, detached

        var progress = result.Progress.Count > 0 ? result.Progress : session.Host.Progress;
        Assert.Contains(progress, p => p.Activity == $"Checkpoint process sleep ({target.Pid})" && p.RecordType == ProgressRecordType.Processing);
        Assert.Contains(progress, p => p.StatusDescription.StartsWith("pages: ", StringComparison.Ordinal) && p.PercentComplete == 100);
        Assert.Equal(ProgressRecordType.Completed, progress[^1].RecordType);

        var valid = session.Run("Test-CkptImage $args[0] -Detailed", image).AssertClean().OfType<CkptImageValidation>().Single();
        Assert.True(valid.IsValid, valid.Problem);
        Assert.Equal(target.Pid, valid.Pid);
    }

    [Fact]
    public void Get_CkptImage_Where_vma_type_eq_Anon_on_a_real_image()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "app.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image).AssertClean();
        var all = session.Run("Get-CkptImage $args[0]", image).AssertClean();
        var task = Assert.Single(all.OfType<CkptTask>());
        Assert.Equal((target.Pid, "sleep", "/usr/bin/sleep"), (task.Pid, task.Comm, task.Exe));
        Assert.Equal(all.OfType<CkptVma>().Count(), task.VmaCount);

        var anon = session.Run("Get-CkptImage $args[0] | Where vma_type -eq Anon", image).AssertClean().OfType<CkptVma>().ToList();
        Assert.NotEmpty(anon);
        Assert.Contains(anon, vma => vma.Path == "[stack]" && vma.PagesSaved > 0);
        Assert.All(anon, vma => Assert.Equal(VmaType.Anon, vma.VmaType));

        // The same mappings, protections, offsets and names the kernel shows for the live process
        // (it is still running, unchanged).
        var maps = File.ReadAllLines($"/proc/{target.Pid}/maps").Select(MapsKey).ToHashSet();
        var fromImage = all.OfType<CkptVma>().Where(v => v.VmaType != VmaType.Vsyscall).ToList();
        Assert.All(fromImage, vma => Assert.Contains($"{vma.Start:x}-{vma.End:x} {vma.Protection} {vma.Offset:x8} {vma.Path}", maps));

        var files = all.OfType<CkptFile>().ToList();
        Assert.Equal(("/dev/null", FileAccess.Read), (files[0].Path, files[0].Access));
        Assert.Equal(target.LogPath, files.Single(f => f.Fd == 1).Path);
    }

    [Fact]
    public void Get_Process_objects_and_several_processes_checkpoint_into_a_folder_with_PassThru()
    {
        using var first = TargetProcess.StartSleep();
        using var second = TargetProcess.StartSleep();
        string folder = Path.Combine(scratch, "images");
        var result = session.Run("""
            [System.Diagnostics.Process]::GetProcessById($args[0]), [System.Diagnostics.Process]::GetProcessById($args[1]) |
                Checkpoint-Process -Path $args[2] -PassThru
            """, first.Pid, second.Pid, folder).AssertClean();
        var infos = result.OfType<CkptImageInfo>().ToList();
        Assert.Equal([first.Pid, second.Pid], infos.Select(i => i.Pid));
        Assert.Equal([Path.Combine(folder, $"sleep-{first.Pid}.ckpt"), Path.Combine(folder, $"sleep-{second.Pid}.ckpt")], infos.Select(i => i.ImagePath));
        Assert.All(infos, info => Assert.True(info.Length == new FileInfo(info.ImagePath).Length && info.VmaCount > 0 && !info.Killed));
        Assert.True(first.IsAlive && second.IsAlive);
    }

    [Fact]
    public void Restore_Process_Path_brings_a_killed_process_back_with_its_pid()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "app.ckpt");
        var checkpoint = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill -Confirm:$false -PassThru", target.Pid, image).AssertClean();
        Assert.True(Assert.Single(checkpoint.OfType<CkptImageInfo>()).Killed);
        target.Reap(); // killed by the engine; collect it so its pid is free again
        Assert.False(TargetProcess.IsRunning(target.Pid));

        var whatIf = session.Run("Restore-Process -Path $args[0] -WhatIf", image).AssertClean();
        Assert.Empty(whatIf.Output);
        Assert.Contains($"Restore process sleep ({target.Pid})", session.Host.Output);
        Assert.False(Directory.Exists($"/proc/{target.Pid}"));

        restoredPids.Add(target.Pid);
        var restored = session.Run("[System.IO.FileInfo]::new($args[0]) | Restore-Process -PassThru", image).AssertClean();
        var process = Assert.IsType<System.Diagnostics.Process>(Assert.Single(restored.Output).BaseObject);
        Assert.Equal(target.Pid, process.Id);
        Assert.True(TargetProcess.IsRunning(target.Pid));
        Assert.Equal("sleep", File.ReadAllText($"/proc/{target.Pid}/comm").Trim());
        Assert.NotEqual(Environment.ProcessId, ParentOf(target.Pid)); // not a child of the shell
    }

    [Fact]
    public void VMA_flags_agree_with_the_live_process_smaps_and_the_default_view_reads_like_maps()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "app.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image).AssertClean();
        var smaps = SmapsFlags(target.Pid);
        var vmas = session.Run("Get-CkptImage $args[0]", image).AssertClean().OfType<CkptVma>().ToList();
        Assert.NotEmpty(vmas);
        Assert.All(vmas, vma =>
        {
            Assert.True(smaps.ContainsKey(vma.Start), $"{vma} is not a mapping of the live process");
            Assert.Subset(smaps[vma.Start], vma.FlagsText.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet());
            Assert.Equal(vma.Protection[0] == 'r', vma.Flags.HasFlag(VmaFlags.Read));
            Assert.Equal(vma.Protection[1] == 'w', vma.Flags.HasFlag(VmaFlags.Write));
            Assert.Equal(vma.Protection[2] == 'x', vma.Flags.HasFlag(VmaFlags.Exec));
        });

        session.Run("Get-CkptImage $args[0] | Out-Default", image).AssertClean();
        string text = session.Host.Output;
        Assert.Matches(@"[0-9a-f]{12}-[0-9a-f]{12} r-xp [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2}\s+\d+\s+\S+\s+\S+ File\s+/usr/bin/sleep", text);
        Assert.Matches(@"rw-p 00000000 00:00\s+0\s+\S+\s+\S+ Anon\s+\[stack\]", text);
        Assert.Matches(@"lr-x------\s+0 -> /dev/null", text);
        Assert.Matches($@"l-wx------\s+1 -> {System.Text.RegularExpressions.Regex.Escape(target.LogPath)}", text);
    }

    /// <summary>
    /// A real multi-threaded program (CPython, not written here): three named threads waiting on an
    /// Event, sleeping in time.sleep and blocked on a lock, the main thread in join.
    /// </summary>
    [Fact]
    public void Get_CkptImage_lists_every_thread_of_a_real_multi_threaded_python_with_its_tid_and_name()
    {
        const string script = """
            import ctypes, threading, time
            libc = ctypes.CDLL(None)
            lock = threading.Lock(); lock.acquire(); stop = threading.Event()
            def run(name, work):
                libc.prctl(15, name.encode(), 0, 0, 0)
                work()
            threads = [threading.Thread(target=run, args=(n, w)) for n, w in
                       (("ckpt-wait", stop.wait), ("ckpt-sleep", lambda: time.sleep(1000)), ("ckpt-lock", lock.acquire))]
            for t in threads: t.start()
            for t in threads: t.join()
            """;
        using var target = TargetProcess.Start("/usr/bin/python3", "-I", "-c", script);
        string[] names = ["ckpt-wait", "ckpt-sleep", "ckpt-lock"];
        Dictionary<int, string> live = [];
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            live = Directory.EnumerateDirectories($"/proc/{target.Pid}/task")
                .Select(d => int.Parse(Path.GetFileName(d)))
                .ToDictionary(tid => tid, tid => File.ReadAllText($"/proc/{target.Pid}/task/{tid}/comm").TrimEnd('\n'));
            if (live.Count == 4 && names.All(live.ContainsValue) && live.All(t => InSyscall(target.Pid, t.Key) == (t.Value == "ckpt-sleep" ? 230 : 202))) break;
            Assert.True(DateTime.UtcNow < deadline, $"python did not start its threads: {string.Join(", ", live)}; log: {File.ReadAllText(target.LogPath)}");
            Thread.Sleep(20);
        }

        string image = Path.Combine(scratch, "python.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image).AssertClean();
        var all = session.Run("Get-CkptImage $args[0]", image).AssertClean();
        var threads = all.OfType<CkptThread>().ToList();
        Assert.Equal(4, Assert.Single(all.OfType<CkptTask>()).ThreadCount);
        Assert.Equal(target.Pid, threads[0].Tid); // the leader first
        Assert.Equal(live.OrderBy(t => t.Key), threads.Select(t => KeyValuePair.Create(t.Tid, t.Name)).OrderBy(t => t.Key));
        Assert.All(threads, t => Assert.Equal((image, target.Pid), (t.ImagePath, t.Pid)));
        Assert.Equal("python3", threads[0].Name);
        Assert.Equal("clock_nanosleep", threads.Single(t => t.Name == "ckpt-sleep").SyscallName);
        Assert.Equal("futex", threads.Single(t => t.Name == "ckpt-wait").SyscallName);
        Assert.Equal("futex", threads.Single(t => t.Name == "ckpt-lock").SyscallName);
        Assert.All(threads, t => Assert.NotEqual(SyscallState.NotInSyscall, t.State));
        Assert.True(target.IsAlive);

        session.Run("Get-CkptImage $args[0] | Out-Default", image).AssertClean();
        Assert.Matches(@"ckpt-sleep\s+(Restart|RestartBlock)\s+230 clock_nanosleep", session.Host.Output); // absolute sleeps (CPython's) restart as they were
    }

    /// <summary>The system call a blocked thread is in (/proc/PID/task/TID/syscall), -1 when running or not in one.</summary>
    private static long InSyscall(int pid, int tid)
    {
        string first = File.ReadAllText($"/proc/{pid}/task/{tid}/syscall").Split(' ', 2)[0].Trim();
        return long.TryParse(first, out long number) ? number : -1;
    }

    [Fact]
    public void A_process_the_engine_refuses_is_an_InvalidOperation_error_and_keeps_running()
    {
        // fd 5 is a pseudo-terminal master, which the engine does not checkpoint.
        using var target = TargetProcess.StartNamed("sleep", "/bin/bash", "-c", "exec 5<>/dev/ptmx; exec sleep 1000");
        string image = Path.Combine(scratch, "refused.ckpt");
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.InvalidOperation, error.CategoryInfo.Category);
        Assert.StartsWith("CheckpointFailed,", error.FullyQualifiedErrorId);
        Assert.Contains("fd 5", error.Exception.Message);
        Assert.False(File.Exists(image));
        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch));
        Assert.True(target.IsAlive);
        CheckpointProcessTests.AssertNotTracedOrStopped(target.Pid);
    }

    /// <summary>"start-end perms offset path" of a /proc/PID/maps line, without the device and inode columns.</summary>
    private static string MapsKey(string line)
    {
        string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        return $"{fields[0]} {fields[1]} {fields[2]} {(fields.Length > 5 ? fields[5].Trim() : "")}";
    }

    /// <summary>VmFlags mnemonics of each mapping, by start address, from the live /proc/PID/smaps.</summary>
    private static Dictionary<ulong, HashSet<string>> SmapsFlags(int pid)
    {
        var flags = new Dictionary<ulong, HashSet<string>>();
        ulong current = 0;
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            if (line.StartsWith("VmFlags:", StringComparison.Ordinal))
                flags[current] = line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            else if (System.Text.RegularExpressions.Regex.Match(line, "^([0-9a-f]+)-[0-9a-f]+ ") is { Success: true } header)
                current = Convert.ToUInt64(header.Groups[1].Value, 16);
        }
        return flags;
    }

    private static int ParentOf(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
    }

    public void Dispose()
    {
        foreach (int pid in restoredPids) TargetProcess.kill(pid, 9);
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
