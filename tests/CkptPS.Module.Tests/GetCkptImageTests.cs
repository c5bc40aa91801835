using System.Management.Automation;
using Ckpt.Image.Records;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;
using static CkptPS.Module.Tests.Infrastructure.SyntheticImage;

namespace CkptPS.Module.Tests;

/// <summary>Get-CkptImage and Test-CkptImage on an image whose every field is known.</summary>
public sealed class GetCkptImageTests : IDisposable
{
    /// <summary>Objects of the one-thread synthetic image: a task, 6 VMAs, 3 files, 1 thread.</summary>
    private const int ObjectCount = 11;

    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();
    private readonly string image;

    public GetCkptImageTests() => image = SyntheticImage.Write(scratch);

    [Fact]
    public void Emits_the_task_then_the_VMAs_then_the_files_then_the_threads_each_with_ImagePath_and_Pid()
    {
        var result = session.Run("Get-CkptImage $args[0]", image).AssertClean();
        var kinds = result.Output.Select(o => o.BaseObject.GetType().Name).ToList();
        Assert.Equal(["CkptTask", "CkptVma", "CkptVma", "CkptVma", "CkptVma", "CkptVma", "CkptVma", "CkptFile", "CkptFile", "CkptFile", "CkptThread"], kinds);
        Assert.All(result.Output, o =>
        {
            Assert.Equal(image, o.Properties["ImagePath"].Value);
            Assert.Equal(Pid, o.Properties["Pid"].Value);
        });
    }

    [Fact]
    public void The_task_carries_what_the_image_recorded()
    {
        var task = Assert.Single(session.Run("Get-CkptImage $args[0]", image).AssertClean().OfType<CkptTask>());
        Assert.Equal((Pid, Ppid, Comm, Exe, "/home/synthetic"), (task.Pid, task.Ppid, task.Comm, task.Exe, task.Cwd));
        Assert.NotNull(task.Credentials);
        Assert.Equal(((uint?)Uid, (uint)Gid, 0x1ff_ffff_ffffUL), (task.Uid, task.Credentials.Gid, task.Credentials.CapBounding));
        Assert.Equal("running", task.State); // the leader of the synthetic image is not in a system call
        Assert.Null(task.ExitStatus);
        Assert.Equal((6, 3, 7UL, 7UL * PageSize), (task.VmaCount, task.FileCount, task.PagesSaved, task.SavedBytes));
        Assert.Equal("6.18.0-synthetic", task.KernelRelease);
        Assert.Equal(new DateTime(2025, 11, 23, 0, 0, 0, DateTimeKind.Utc), task.CheckpointTimeUtc);
    }

    [Fact]
    public void Where_vma_type_eq_Anon_works_as_written()
    {
        var result = session.Run("Get-CkptImage $args[0] | Where vma_type -eq Anon", image).AssertClean();
        var anon = result.OfType<CkptVma>().ToList();
        Assert.Equal(AnonVmaCount, anon.Count);
        Assert.Equal(result.Output.Count, anon.Count);
        Assert.All(anon, vma => Assert.Equal(VmaType.Anon, vma.VmaType));
        Assert.Equal(["[heap]", "", "[stack]"], anon.Select(v => v.Path));
    }

    [Fact]
    public void VMAs_read_like_proc_maps()
    {
        var vmas = session.Run("Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptVma] }", image).AssertClean().OfType<CkptVma>().ToList();
        var text = vmas[0];
        Assert.Equal((CodeStart, CodeStart + 0x2000, 0x2000UL, "r-xp", Exe, 4UL, 4UL * PageSize, 0UL),
            (text.Start, text.End, text.Size, text.Protection, text.Path, text.PageOffset, text.Offset, text.PagesSaved));
        Assert.Equal("08:01", text.DeviceText);
        Assert.Equal(1010UL, text.Inode);
        Assert.Equal("rw-p", vmas[1].Protection);
        Assert.Equal((VmaType.SharedAnon, "rw-s", "/dev/zero (deleted)"), (vmas[3].VmaType, vmas[3].Protection, vmas[3].Path));
        Assert.Equal((VmaType.Vdso, "[vdso]"), (vmas[5].VmaType, vmas[5].Path));
        Assert.Equal(VmaFlags.Read | VmaFlags.Write | VmaFlags.MayRead | VmaFlags.MayWrite | VmaFlags.MayExec | VmaFlags.GrowsDown | VmaFlags.Account,
            vmas[4].Flags);
        Assert.Equal("rd wr mr mw me gd ac", vmas[4].FlagsText);
    }

    [Fact]
    public void Kernel_field_names_are_alias_properties()
    {
        var result = session.Run("""
            $all = Get-CkptImage $args[0]
            $vma = $all | Where-Object { $_ -is [CkptPS.CkptVma] } | Where-Object vm_pgoff -eq 4
            $file = $all | Where-Object { $_ -is [CkptPS.CkptFile] } | Where-Object f_pos -eq 1234 | Where-Object fd -eq 1
            $task = $all | Where-Object { $_ -is [CkptPS.CkptTask] }
            $vma.vm_start -eq $vma.Start; $vma.vm_end -eq $vma.End; $vma.vm_flags -eq $vma.Flags
            $vma.vm_file -eq $vma.Path; $vma.vma_type -eq 'File'; $vma.vm_page_prot -eq 'r-xp'
            $file.f_flags -band [CkptPS.OpenFlags]::Append; $file.f_mode -eq 'Write'; $file.i_ino -eq 1021
            $task.Id -eq $task.Pid; $task.ProcessName -eq 'synthetic'; $task.nr_threads -eq 1; $task.cred.Uid -eq 1000
            """, image).AssertClean();
        Assert.Equal(13, result.Output.Count);
        Assert.All(result.Output, o => Assert.True(LanguagePrimitives.IsTrue(o), $"alias check {result.Output.IndexOf(o)} failed"));
    }

    [Fact]
    public void Files_read_like_ls_l_proc_fd()
    {
        var files = session.Run("Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptFile] }", image).AssertClean().OfType<CkptFile>().ToList();
        Assert.Equal([0, 1, 2], files.Select(f => f.Fd));
        Assert.Equal(("lr-x------", "/dev/null", FileKind.CharacterDevice), (files[0].LinkMode, files[0].Path, files[0].Kind));
        Assert.Equal(("l-wx------", 1234L, OpenFlags.WriteOnly | OpenFlags.Append | OpenFlags.LargeFile), (files[1].LinkMode, files[1].Position, files[1].Flags));
    }

    [Fact]
    public void Default_views_format_maps_fd_and_process_tables()
    {
        session.Run("Get-CkptImage $args[0] | Out-Default", image).AssertClean();
        string text = session.Host.Output;
        Assert.Contains($"Memory of {Pid} (like /proc/{Pid}/maps)", text);
        Assert.Contains($"Files of {Pid} (like ls -l /proc/{Pid}/fd)", text);
        Assert.Matches(@"Saved\(M\)\s+VMAs\s+Files\s+Threads\s+Id\s+PPid\s+Uid\s+ProcessName", text);
        Assert.Matches(@"0\.03\s+6\s+3\s+1\s+4242\s+1\s+1000\s+synthetic\s+/usr/bin/synthetic", text);
        Assert.Matches(@"555555554000-555555556000\s+r-xp\s+00004000\s+08:01\s+1010\s+8\.0K\s+0B\s+File\s+/usr/bin/synthetic", text);
        Assert.Matches(@"7f0000000000-7f0000400000\s+rw-p\s+00000000\s+00:00\s+0\s+4\.0M\s+4\.0K\s+Anon", text);
        Assert.Matches(@"555555560000-555555581000\s+rw-p .* 132K\s+8\.0K\s+Anon\s+\[heap\]", text);
        Assert.Matches(@"lr-x------\s+0 -> /dev/null\s+0\s+CharacterDevice", text);
        Assert.Matches(@"l-wx------\s+1 -> /tmp/synthetic\.log\s+1234\s+Regular", text);
        Assert.Contains($"Threads of {Pid} (like ps -T -p {Pid})", text);
        Assert.Matches(@"Tid\s+Name\s+State\s+Syscall\s+Nice\s+Policy\s+Pending\s+Blocked\s+SignalStack", text);
        Assert.Matches(@"4242 synthetic\s+NotInSyscall\s+-\s+0 Other\s+0 0000000000000000 disabled", text);
    }

    [Fact]
    public void A_three_thread_image_emits_one_thread_object_per_thread_with_tid_name_state_and_syscall()
    {
        string threaded = SyntheticImage.Write(scratch, "threads.ckpt", threads: 3);
        var result = session.Run("Get-CkptImage $args[0]", threaded).AssertClean();
        var threads = result.OfType<CkptThread>().ToList();
        Assert.Equal(ThreadTids, threads.Select(t => t.Tid));
        Assert.Equal(ThreadNames, threads.Select(t => t.Name));
        Assert.All(threads, t => Assert.Equal((threaded, Pid), (t.ImagePath, t.Pid)));
        Assert.Equal([true, false, false], threads.Select(t => t.IsLeader));
        Assert.Equal(3, Assert.Single(result.OfType<CkptTask>()).ThreadCount);
        Assert.Equal(6, result.OfType<CkptVma>().Count()); // the shared mm once, not once per thread
        Assert.Equal(3, result.OfType<CkptFile>().Count());

        var (leader, worker, sleeper) = (threads[0], threads[1], threads[2]);
        Assert.Equal((SyscallState.NotInSyscall, -1L, "", "-"), (leader.State, leader.SyscallNumber, leader.SyscallName, leader.Syscall));
        Assert.Equal((SyscallState.Restart, 202L, "futex", "202 futex"), (worker.State, worker.SyscallNumber, worker.SyscallName, worker.Syscall));
        Assert.Equal((WorkerBlocked, 5, SchedulingPolicy.Other, 0), (worker.BlockedSignals, worker.Nice, worker.Policy, worker.PendingSignals));
        Assert.Equal((SyscallState.RestartBlock, "230 clock_nanosleep", RestartFunction.Nanosleep), (sleeper.State, sleeper.Syscall, sleeper.RestartFunction));
        Assert.Equal((1, SleeperAltStack, 8192UL, $"0x{SleeperAltStack:x}+8192"), (sleeper.PendingSignals, sleeper.SignalStackPointer, sleeper.SignalStackSize, sleeper.SignalStack));
        Assert.Equal("disabled", leader.SignalStack);
        Assert.Equal(CodeStart + 0x120, sleeper.Rip);

        var filtered = session.Run("Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptThread] } | Where-Object State -eq Restart", threaded).AssertClean();
        Assert.Equal(ThreadTids[1], Assert.Single(filtered.OfType<CkptThread>()).Tid);
        Assert.True(LanguagePrimitives.IsTrue(Assert.Single(session.Run("Test-CkptImage $args[0]", threaded).AssertClean().Output)));
    }

    [Fact]
    public void Thread_objects_have_kernel_name_aliases_and_a_ps_T_like_view()
    {
        string threaded = SyntheticImage.Write(scratch, "threads.ckpt", threads: 3);
        var result = session.Run("""
            $threads = @(Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptThread] })
            $worker = $threads | Where-Object comm -eq 'worker-1'
            $worker.Id -eq $worker.Tid; $worker.tgid -eq 4242; $worker.blocked -eq $worker.BlockedSignals
            ($threads | Where-Object sas_ss_size -eq 8192).Name -eq 'sleeper'
            """, threaded).AssertClean();
        Assert.Equal(4, result.Output.Count);
        Assert.All(result.Output, o => Assert.True(LanguagePrimitives.IsTrue(o), $"alias check {result.Output.IndexOf(o)} failed"));

        session.Run("Get-CkptImage $args[0] | Out-Default", threaded).AssertClean();
        string text = session.Host.Output;
        Assert.True(text.IndexOf("Files of", StringComparison.Ordinal) < text.IndexOf("Threads of", StringComparison.Ordinal));
        Assert.Matches(@"4243 worker-1\s+Restart\s+202 futex\s+5 Other\s+0 0000000000000200", text);
        Assert.Matches(@"4249 sleeper\s+RestartBlock\s+230 clock_nanosleep\s+0 Other\s+1 0000000000000000 0x7f0001000000\+8192", text);
    }

    /// <summary>
    /// Out-String lives in Microsoft.PowerShell.Utility, which this runspace does not have; Out-Default
    /// to the capturing host runs the same formatter over the same views.
    /// </summary>
    [Fact]
    public void Sections_follow_the_object_order_and_a_filtered_stream_shows_only_its_own()
    {
        session.Run("Get-CkptImage $args[0] | Out-Default", image).AssertClean();
        string all = session.Host.Output;
        Assert.Matches(@"Tasks in .*synthetic\.ckpt", all);
        Assert.Matches(@"7ffd00000000-7ffd00021000\s+rw-p\s+00000000\s+00:00\s+0\s+132K\s+12K\s+Anon\s+\[stack\]", all);
        Assert.Matches(@"l-wx------\s+2 -> /tmp/synthetic\.log", all);
        Assert.True(all.IndexOf("Tasks in", StringComparison.Ordinal) < all.IndexOf("Memory of", StringComparison.Ordinal));
        Assert.True(all.IndexOf("Memory of", StringComparison.Ordinal) < all.IndexOf("Files of", StringComparison.Ordinal));

        session.Host.ClearOutput();
        session.Run("Get-CkptImage $args[0] | Where vma_type -eq Anon | Out-Default", image).AssertClean();
        string anon = session.Host.Output;
        Assert.Contains($"Memory of {Pid} (like /proc/{Pid}/maps)", anon);
        Assert.DoesNotContain("Files of", anon);
        Assert.DoesNotContain("Tasks in", anon);
        Assert.DoesNotContain("[vdso]", anon);
        Assert.Equal(AnonVmaCount, anon.Split('\n').Count(line => System.Text.RegularExpressions.Regex.IsMatch(line, @"^[0-9a-f]{12}-[0-9a-f]{12} .* Anon\b")));
    }

    [Fact]
    public void FileInfo_objects_bind_through_FullName_and_strings_through_the_pipeline()
    {
        var fromFileInfo = session.Run("[System.IO.FileInfo]::new($args[0]) | Get-CkptImage", image).AssertClean();
        Assert.Equal(ObjectCount, fromFileInfo.Output.Count);
        var fromPSPath = session.Run("[pscustomobject]@{ PSPath = 'Microsoft.PowerShell.Core\\FileSystem::' + $args[0] } | Get-CkptImage", image).AssertClean();
        Assert.Equal(ObjectCount, fromPSPath.Output.Count);
        var relative = session.Run("$null = $ExecutionContext.SessionState.Path.SetLocation($args[0]); 'synthetic.ckpt' | Get-CkptImage | Where vma_type -eq Vdso", scratch).AssertClean();
        Assert.Equal(VmaType.Vdso, Assert.Single(relative.OfType<CkptVma>()).VmaType);
    }

    [Fact]
    public void A_truncated_image_is_InvalidData_naming_record_and_offset_and_the_next_path_still_runs()
    {
        string truncated = Path.Combine(scratch, "truncated.ckpt");
        File.WriteAllBytes(truncated, File.ReadAllBytes(image)[..1000]);
        var result = session.Run("Get-CkptImage $args[0], $args[1]", truncated, image);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.InvalidData, error.CategoryInfo.Category);
        Assert.StartsWith("InvalidImage,", error.FullyQualifiedErrorId);
        Assert.Matches(@"record \w+ \(\d+\) at offset \d+", error.Exception.Message);
        Assert.Equal(ObjectCount, result.Output.Count); // the good image after it
    }

    [Fact]
    public void A_missing_image_is_ObjectNotFound()
    {
        var result = session.Run("Get-CkptImage $args[0]", Path.Combine(scratch, "absent.ckpt"));
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);
        Assert.StartsWith("ImageNotFound,", error.FullyQualifiedErrorId);
    }

    [Fact]
    public void An_image_of_a_failed_checkpoint_reports_the_engines_reason()
    {
        string failed = SyntheticImage.Write(scratch, "failed.ckpt", failAfterMm: true);
        var result = session.Run("Get-CkptImage $args[0]", failed);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.InvalidData, error.CategoryInfo.Category);
        Assert.StartsWith("FailedCheckpointImage,", error.FullyQualifiedErrorId);
        Assert.Contains("Permission denied (errno 13)", error.Exception.Message);
    }

    /// <summary>
    /// Read bytes of the pipeline thread (/proc/thread-self/io, rchar) around each command: listing
    /// seeks over the page contents, validating reads (and hashes) all of them.
    /// </summary>
    [Fact]
    public void Get_CkptImage_skips_page_contents_that_Test_CkptImage_reads()
    {
        string large = SyntheticImage.Write(scratch, "large.ckpt", anonMmapPages: AnonMmapCapacity);
        long contents = AnonMmapCapacity * PageSize;
        var result = session.Run("""
            function Get-ReadBytes { [long](([System.IO.File]::ReadAllLines('/proc/thread-self/io') -match '^rchar:')[0] -replace '\D', '') }
            $before = Get-ReadBytes; $objects = @(Get-CkptImage $args[0]); $listed = (Get-ReadBytes) - $before
            $before = Get-ReadBytes; $valid = Test-CkptImage $args[0]; $validated = (Get-ReadBytes) - $before
            $objects.Count; $listed; $valid; $validated
            """, large).AssertClean();
        Assert.Equal(ObjectCount, Convert.ToInt32(result.Output[0].BaseObject));
        long listed = Convert.ToInt64(result.Output[1].BaseObject), validated = Convert.ToInt64(result.Output[3].BaseObject);
        Assert.True(LanguagePrimitives.IsTrue(result.Output[2]));
        Assert.True(validated >= contents, $"Test-CkptImage read {validated} bytes of an image with {contents} bytes of pages");
        Assert.True(listed < contents / 16, $"Get-CkptImage read {listed} bytes of an image with {contents} bytes of pages");
    }

    [Fact]
    public void Test_CkptImage_is_true_for_an_intact_image_and_false_for_damage_with_details()
    {
        byte[] bytes = File.ReadAllBytes(image);
        string flipped = Path.Combine(scratch, "flipped.ckpt");
        byte[] damaged = (byte[])bytes.Clone();
        damaged[bytes.Length / 3] ^= 0x40; // inside the page contents: only the checksum can notice
        File.WriteAllBytes(flipped, damaged);
        string truncated = Path.Combine(scratch, "cut.ckpt");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 8)]);

        var first = session.Run("Test-CkptImage $args[0] -Detailed", image).AssertClean().OfType<CkptImageValidation>().Single();
        Assert.True(first.IsValid, first.Problem);
        var plain = session.Run("Test-CkptImage $args[0], $args[1], $args[2], $args[3]", image, flipped, truncated,
            Path.Combine(scratch, "absent.ckpt")).AssertClean();
        Assert.Equal([true, false, false, false], plain.Output.Select(o => (bool)o.BaseObject));

        var detailed = session.Run("Test-CkptImage $args[0], $args[1] -Detailed", image, truncated).AssertClean().OfType<CkptImageValidation>().ToList();
        Assert.True(detailed[0].IsValid);
        Assert.Equal(Pid, detailed[0].Pid);
        Assert.Equal(bytes.Length, detailed[0].Length);
        Assert.False(detailed[1].IsValid);
        Assert.Equal(RecordType.Tail, detailed[1].RecordType);
        Assert.Equal(bytes.Length - 32, detailed[1].Offset); // the tail record is 32 bytes
        Assert.Contains("truncated", detailed[1].Problem);
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
