namespace Ckpt.Engine.Tests;

/// <summary>
/// Where `ckpt checkpoint --output FILE` puts the image (docs/SECURITY.md, "Checkpoint side"): created
/// 0600, never through a symbolic link, an existing image replaced only with --force and only once
/// the new one is complete, nothing left behind by a failure; a pid that cannot exist is refused
/// before anything is opened.
/// </summary>
[Collection("checkpoint")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CheckpointOutputTests : IDisposable
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-output-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string[] Entries() => Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName).Order().ToArray()!;

    private static (int ExitCode, string Stdout, string Stderr) Checkpoint(int pid, string output, params string[] more) =>
        RunCli(["checkpoint", "--pid", pid.ToString(), "--output", output, "--progress-fd", "2", .. more]);

    // The refusal came before the freeze: no progress line at all, only the failure.
    private static void AssertRefusedBeforeTheFreeze(string stderr) => Assert.DoesNotContain("\"phase\"", stderr);

    [Fact]
    public void Image_is_created_0600_and_nothing_else_is_left_in_the_directory()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = Path.Combine(_directory, "app.ckpt");
        var (code, _, stderr) = Checkpoint(target.Pid, image);
        Assert.True(code == 0, stderr);
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(image));
        Assert.Equal(["app.ckpt"], Entries());
        Assert.Equal(target.Pid, ReadImage(image).Task.Pid);
        target.RequirePass();
    }

    [Fact]
    public void A_symlink_at_the_output_neither_redirects_nor_truncates_anything()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string victimDirectory = Directory.CreateTempSubdirectory("ckpt-output-victim-").FullName;
        try
        {
            string victim = Path.Combine(victimDirectory, "precious");
            File.WriteAllText(victim, "precious contents");
            string missing = Path.Combine(victimDirectory, "created-through-the-link");
            string link = Path.Combine(_directory, "app.ckpt"), dangling = Path.Combine(_directory, "dangling.ckpt");
            File.CreateSymbolicLink(link, victim);
            File.CreateSymbolicLink(dangling, missing);
            foreach (string output in new[] { link, dangling })
            {
                foreach (string[] force in new[] { Array.Empty<string>(), ["--force"], ["--force", "--kill"] })
                {
                    var (code, _, stderr) = Checkpoint(target.Pid, output, force);
                    Assert.True(code == 6, $"{output} {string.Join(' ', force)}: exit {code}: {stderr}");
                    Assert.Contains("symbolic link", stderr);
                    AssertRefusedBeforeTheFreeze(stderr);
                }
            }
            Assert.Equal("precious contents", File.ReadAllText(victim));
            Assert.False(File.Exists(missing));
            Assert.Equal(["precious"], Directory.GetFileSystemEntries(victimDirectory).Select(Path.GetFileName));
            Assert.Equal(victim, new FileInfo(link).LinkTarget);
            Assert.Equal(["app.ckpt", "dangling.ckpt"], Entries());
            target.RequirePass(); // and the process was never killed by the --kill attempts
        }
        finally
        {
            Directory.Delete(victimDirectory, recursive: true);
        }
    }

    [Fact]
    public void An_existing_image_is_kept_without_force_and_replaced_with_it()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = Path.Combine(_directory, "app.ckpt");
        File.WriteAllText(image, "an older image");
        File.SetUnixFileMode(image, OwnerReadWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var (code, _, stderr) = Checkpoint(target.Pid, image, "--kill");
        Assert.True(code == 6, $"exit {code}: {stderr}");
        Assert.Contains("already exists", stderr);
        Assert.Contains("\"category\":\"ResourceExists\"", stderr);
        AssertRefusedBeforeTheFreeze(stderr);
        Assert.Equal("an older image", File.ReadAllText(image));

        (code, _, stderr) = Checkpoint(target.Pid, image, "--force");
        Assert.True(code == 0, stderr);
        Assert.Equal(target.Pid, ReadImage(image).Task.Pid);
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(image)); // the new file's mode, not the old one's
        Assert.Equal(["app.ckpt"], Entries());
        target.RequirePass();
    }

    [Fact]
    public void A_failed_checkpoint_keeps_the_existing_image_and_leaves_no_file_behind()
    {
        using var target = Start("ckpt_modes", "terminal"); // refused: fd 3 is a pseudo-terminal master
        string image = Path.Combine(_directory, "app.ckpt");
        File.WriteAllText(image, "the last good image");
        var (code, _, stderr) = Checkpoint(target.Pid, image, "--force", "--kill");
        Assert.True(code == 6, $"exit {code}: {stderr}");
        Assert.Contains("fd 3", stderr);
        Assert.Equal("the last good image", File.ReadAllText(image));

        string fresh = Path.Combine(_directory, "fresh.ckpt");
        (code, _, stderr) = Checkpoint(target.Pid, fresh);
        Assert.True(code == 6, $"exit {code}: {stderr}");
        Assert.Equal(["app.ckpt"], Entries());
        target.RequirePass();
    }

    [Fact]
    public void A_directory_at_the_output_is_refused()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string folder = Directory.CreateDirectory(Path.Combine(_directory, "folder.ckpt")).FullName;
        var (code, _, stderr) = Checkpoint(target.Pid, folder, "--force");
        Assert.True(code == 6, $"exit {code}: {stderr}");
        Assert.Contains("a directory", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(folder));
        target.RequirePass();
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("-2147483648")]
    public void A_pid_of_zero_or_below_is_refused_with_exit_code_5_before_anything(string pid)
    {
        string image = Path.Combine(_directory, "never.ckpt");
        var (code, _, stderr) = RunCli(["checkpoint", $"--pid={pid}", "--output", image, "--progress-fd", "2"]);
        Assert.True(code == 5, $"exit {code}: {stderr}");
        Assert.Contains($"ckpt: --pid {pid} is not a process id", stderr);
        Assert.Contains("\"category\":\"InvalidArgument\"", stderr);
        Assert.Empty(Entries());
    }
}
