using System.Text.Json;

namespace Ckpt.Engine.Tests;

/// <summary>
/// `ckpt checkpoint` and `ckpt show` as the module and scripts run them: a separate process, exit
/// codes and `ckpt:` lines of docs/ARCHITECTURE.md, the progress channel, images on stdout.
/// </summary>
[Collection("checkpoint")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class CheckpointCliTests
{
    [Fact]
    public void Missing_pid_exits_3()
    {
        int pid = RestoreTestProcesses.FreePid();
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", pid.ToString(), "--output", TempPath("x.img")]);
        Assert.Equal(3, code);
        Assert.StartsWith("ckpt: ", stderr);
        Assert.Contains(pid.ToString(), stderr);
    }

    [Fact]
    public void Usage_errors_exit_2()
    {
        var (code, _, stderr) = RunCli(["checkpoint", "--output", TempPath("x.img")]);
        Assert.Equal(2, code);
        Assert.Contains("--pid", stderr);
    }

    [Fact]
    public void Permission_denied_exits_4_and_the_target_runs_on()
    {
        // The engine runs as nobody against a root-owned target: refused before PTRACE_SEIZE, which the
        // kernel would refuse too (docs/SECURITY.md, "Unprivileged mode").
        using var target = Start("ckpt_state", TempPath("data"));
        // The output goes to the sticky, world-writable temp directory, where nobody may create it.
        // The engine runs from a world-readable copy: the checkout (CI: /check/work/main, or under
        // /root) need not be searchable by nobody, and exec would fail before ptrace is tried.
        string engine = WorldExecutableCopy(CkptPath());
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("nobody.img")],
            prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], executable: engine);
        Assert.True(code == 4, $"exit {code}: {stderr}");
        Assert.Contains($"process {target.Pid} runs as uid 0/0/0/0", stderr);
        target.RequirePass();
    }

    private static string WorldExecutableCopy(string path)
    {
        const UnixFileMode ReadExecute = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
            | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        string directory = Directory.CreateTempSubdirectory("ckpt-engine-copy-").FullName; // 0700 by default
        File.SetUnixFileMode(directory, ReadExecute);
        // A framework-dependent apphost needs its ckpt.dll and runtimeconfig beside it: copy its neighbours too.
        foreach (string file in Directory.GetFiles(Path.GetDirectoryName(path)!))
        {
            string copy = Path.Combine(directory, Path.GetFileName(file));
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, ReadExecute);
        }
        return Path.Combine(directory, Path.GetFileName(path));
    }

    [Fact]
    public void Unsupported_descriptor_exits_6_naming_the_fd()
    {
        using var target = Start("ckpt_modes", "terminal");
        string image = TempPath("socket.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image]);
        Assert.Equal(6, code);
        Assert.Contains("fd 3", stderr);
        Assert.Contains("pseudo-terminal", stderr);
        Assert.False(File.Exists(image)); // a failed checkpoint leaves no file
        // A stream (here stdout) has already carried the first records: it ends with an ERROR record giving the reason.
        string streamed = TempPath("pipe-stdout.img");
        Assert.Equal(6, RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", "-"], stdoutPath: streamed).ExitCode);
        var (showCode, _, showError) = RunCli(["show", streamed]);
        Assert.Equal(5, showCode);
        Assert.Contains("fd 3", showError);
        target.RequirePass();
    }

    [Fact]
    public void Unwritable_output_exits_1_and_the_target_runs_on()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", "/dev/full", "--kill"]);
        Assert.Equal(1, code);
        Assert.Contains("No space left on device", stderr);
        var (missingDirectory, _, _) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", "/nonexistent-dir/x.img"]);
        Assert.Equal(1, missingDirectory);
        target.RequirePass();
    }

    [Fact]
    public void Image_on_stdout_with_progress_lines_and_a_result()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("stdout.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", "-", "--progress-fd", "2"], stdoutPath: image);
        Assert.True(code == 0, stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(lines[..^1], l => Assert.Equal("progress", l.GetProperty("event").GetString()));
        Assert.Contains(lines, l => l.GetProperty("phase").GetString() == "pages" && l.TryGetProperty("total", out _));
        JsonElement result = lines[^1];
        Assert.Equal("result", result.GetProperty("event").GetString());
        Assert.True(result.GetProperty("ok").GetBoolean());
        Assert.Equal(target.Pid, result.GetProperty("pid").GetInt32());
        Assert.Equal(new FileInfo(image).Length, result.GetProperty("bytes").GetInt64());
        Assert.Equal(target.Pid, ReadImage(image).Task.Pid);
        target.RequirePass();
    }

    [Fact]
    public void Failure_result_line_carries_category_and_errno()
    {
        int pid = RestoreTestProcesses.FreePid();
        var (_, _, stderr) = RunCli(["checkpoint", "--pid", pid.ToString(), "--output", TempPath("x.img"), "--progress-fd", "2"]);
        JsonElement result = JsonDocument.Parse(stderr.Split('\n').Last(l => l.StartsWith('{'))).RootElement;
        Assert.False(result.GetProperty("ok").GetBoolean());
        Assert.Equal("ObjectNotFound", result.GetProperty("category").GetString());
        Assert.Equal(3, result.GetProperty("errno").GetInt32());
    }

    [Fact]
    public void Show_describes_an_image_as_text_and_json()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("show.img");
        string comm = File.ReadAllText($"/proc/{target.Pid}/comm").Trim();
        Assert.Equal(0, RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image]).ExitCode);

        var (code, json, _) = RunCli(["show", image, "--json"]);
        Assert.Equal(0, code);
        JsonElement root = JsonDocument.Parse(json).RootElement;
        Assert.True(root.GetProperty("ok").GetBoolean());
        Assert.Equal(target.Pid, root.GetProperty("pid").GetInt32());
        Assert.Equal(comm, root.GetProperty("comm").GetString());
        Assert.Contains(root.GetProperty("vmas").EnumerateArray(), v => v.GetProperty("type").GetString() == "Vdso");
        Assert.Contains(root.GetProperty("files").EnumerateArray(), f => f.GetProperty("fd").GetInt32() == 3);
        JsonElement thread = root.GetProperty("threads")[0];
        Assert.Equal("Restart", thread.GetProperty("syscallState").GetString());
        Assert.Equal((target.Pid, comm), (thread.GetProperty("tid").GetInt32(), thread.GetProperty("name").GetString()));

        var (textCode, text, _) = RunCli(["show", image]);
        Assert.Equal(0, textCode);
        Assert.Contains($"pid {target.Pid} ({comm})", text);
        long syscall = thread.GetProperty("syscall").GetInt64();
        string escapedComm = System.Text.RegularExpressions.Regex.Escape(comm);
        Assert.Matches($@"(?m)^thread {target.Pid} '{escapedComm}': Restart \(syscall {syscall}( \w+)?\), rip 0x[0-9a-f]+$", text);

        string truncated = TempPath("truncated.img");
        File.WriteAllBytes(truncated, File.ReadAllBytes(image)[..4000]);
        var (badCode, _, badError) = RunCli(["show", truncated]);
        Assert.Equal(5, badCode);
        Assert.StartsWith("ckpt: ", badError);
        target.RequirePass();
    }

    [Fact]
    public void Checkpoint_kill_then_restore_passes_the_workload_check()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("roundtrip.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreAndRequirePass(target, image);
    }

    /// <summary>
    /// A program run from /dev/shm (tmpfs) maps a regular file under /dev: an ordinary file mapping,
    /// not a device mapping (the audit once refused every mapped name under /dev/).
    /// </summary>
    [Fact]
    public void A_program_on_dev_shm_is_a_file_mapping_not_a_device()
    {
        string program = $"/dev/shm/ckpt-test-{Environment.ProcessId}-{Guid.NewGuid():N}-ckpt_state";
        File.Copy(RestoreWorkloads.Path("ckpt_state"), program);
        File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            using var target = StartProgram(program, TempPath("data"));
            string image = TempPath("devshm.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
            Assert.True(code == 0, stderr);
            RestoreAndRequirePass(target, image);
        }
        finally
        {
            File.Delete(program);
        }
    }
}
