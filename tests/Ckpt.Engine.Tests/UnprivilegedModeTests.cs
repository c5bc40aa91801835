using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>
/// The unprivileged mode (docs/SECURITY.md): a real user created for the test runs a copy of
/// `ckpt` carrying the file capabilities CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE. It checkpoints
/// and restores that user's own process; it refuses another user's process, images edited to claim
/// other ids or capabilities, and its errors do not tell a file the user cannot see from a missing one.
/// </summary>
[Collection("checkpoint")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class UnprivilegedModeTests(UnprivilegedUser user) : IClassFixture<UnprivilegedUser>
{
    private const int SIGKILL = 9;

    /// <summary>ckpt_state as the user, its data file and log in a folder of the user's (the restore reopens them as the user).</summary>
    private Target StartAsUser(string folder)
    {
        string log = user.UserFile(Path.Combine(folder, "state.log"));
        int pid = SpawnWithEnvironment([.. user.AsUser, user.Workload, Path.Combine(folder, "data")], log, log, newSession: true);
        RestoreTestProcesses.WaitForLine(log, $"READY {pid}");
        return new Target(pid, log);
    }

    private (int ExitCode, string Stdout, string Stderr) Engine(params string[] arguments) =>
        RunCli(arguments, prefix: user.AsUser, executable: user.Engine);

    private string CheckpointAndKill(Target target, string folder)
    {
        string image = Path.Combine(folder, "state.ckpt");
        var (code, _, stderr) = Engine("checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill");
        Assert.True(code == 0, $"unprivileged checkpoint: exit {code}: {stderr}");
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        return image;
    }

    [Fact]
    public void The_users_own_process_is_checkpointed_and_restored()
    {
        string folder = user.NewFolder();
        using Target target = StartAsUser(folder);
        string image = CheckpointAndKill(target, folder);
        var owner = Stat(image);
        Assert.Equal((user.Uid, 0x180u), (owner.Uid, owner.Mode & 0x1ff)); // the user's, 0600

        var restore = Engine("restore", "--input", image);
        if (restore.ExitCode == 0)
        {
            string uids = File.ReadLines($"/proc/{target.Pid}/status").Single(l => l.StartsWith("Uid:"));
            Assert.Equal($"Uid:\t{user.Uid}\t{user.Uid}\t{user.Uid}\t{user.Uid}", uids);
        }
        RequireRestoredAndPass(target, restore);
    }

    [Fact]
    public void Another_users_process_is_refused_and_runs_on()
    {
        using Target target = Start("ckpt_state", TempPath("data")); // root's
        string image = Path.Combine(user.NewFolder(), "root.ckpt");
        var (code, _, stderr) = Engine("checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill");
        Assert.True(code == 4, $"exit {code}: {stderr}");
        Assert.Contains($"ckpt: process {target.Pid} runs as uid 0/0/0/0", stderr);
        Assert.Contains($"ckpt runs for uid {user.Uid} without root and checkpoints only that user's own processes", stderr);
        Assert.False(File.Exists(image));
        target.RequirePass();
    }

    public static TheoryData<string> Lies => new() { "uid 0", "euid 0", "fsuid 0", "gid 0", "capabilities", "securebits", "smaller bounding set" };

    private static CredentialsRecord Lie(CredentialsRecord c, string lie)
    {
        switch (lie)
        {
            case "uid 0": (c.Uid, c.Euid, c.Suid, c.Fsuid) = (0, 0, 0, 0); break;
            case "euid 0": c.Euid = 0; break;
            case "fsuid 0": c.Fsuid = 0; break;
            case "gid 0": (c.Gid, c.Egid, c.Sgid, c.Fsgid) = (0, 0, 0, 0); break;
            case "capabilities": (c.CapPermitted, c.CapEffective) = (0x1ff_ffff_ffff, 0x1ff_ffff_ffff); break;
            case "securebits": c.SecureBits = 0x2f; break;
            default: c.CapBounding &= ~(1ul << 21); break; // CAP_SYS_ADMIN left out
        }
        return c;
    }

    [Theory]
    [MemberData(nameof(Lies))]
    public void An_image_claiming_other_credentials_is_refused_before_anything_exists(string lie)
    {
        string folder = user.NewFolder();
        using Target target = StartAsUser(folder);
        string image = CheckpointAndKill(target, folder);
        ImageEdit.Edit(image, bytes => Assert.Equal(1, ImageEdit.Patch<CredentialsRecord>(bytes, (c, _) => Lie(c, lie))));

        var (code, _, stderr) = Engine("restore", "--input", image);
        Assert.True(code == 4, $"{lie}: exit {code}: {stderr}");
        Assert.Contains("restores only images of that user's own processes", stderr);
        Assert.False(Directory.Exists($"/proc/{target.Pid}"), $"{lie}: a process {target.Pid} exists");
    }

    [Fact]
    public void A_file_the_user_cannot_see_is_reported_as_a_missing_one_is()
    {
        string folder = user.NewFolder();
        using Target target = StartAsUser(folder);
        string image = CheckpointAndKill(target, folder);
        string data = Path.Combine(folder, "data");

        // The folder becomes root's and private: the data file is still there, the user cannot reach it.
        Chown(folder, 0, 0);
        File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var hidden = Engine("restore", "--input", image);
        File.Delete(data);
        var missing = Engine("restore", "--input", image);
        Assert.True(hidden.ExitCode != 0, hidden.Stderr);
        Assert.Equal((missing.ExitCode, missing.Stderr), (hidden.ExitCode, hidden.Stderr));
        Assert.Contains(folder, hidden.Stderr);
        Assert.False(Directory.Exists($"/proc/{target.Pid}"));
    }

    internal static Native.Stat Stat(string path)
    {
        Assert.Equal(0, Native.stat(path, out Native.Stat result));
        return result;
    }

    internal static void Chown(string path, uint uid, uint gid) => Assert.Equal(0, Native.chown(path, uid, gid));

    internal static partial class Native
    {
        [StructLayout(LayoutKind.Sequential)]
        public struct Stat
        {
            public ulong Device, Inode, LinkCount;
            public uint Mode, Uid, Gid, Padding;
            public ulong RawDevice;
            public long Size, BlockSize, Blocks;
            public long AccessSeconds, AccessNanoseconds, ModifySeconds, ModifyNanoseconds, ChangeSeconds, ChangeNanoseconds;
            public long Reserved0, Reserved1, Reserved2;
        }

        [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int stat(string path, out Stat result);

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int chown(string path, uint uid, uint gid);
    }
}

/// <summary>
/// A real user made for these tests (useradd -M, userdel afterwards) and a folder everyone can
/// enter holding a copy of the engine with CAP_CHECKPOINT_RESTORE + CAP_SYS_PTRACE as file
/// capabilities (setcap, libcap2-bin) and a copy of the workload (the checkout may be under /root).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class UnprivilegedUser : IDisposable
{
    private const UnixFileMode Public = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private readonly string _name = $"ckptu{Environment.ProcessId % 100000}";
    private readonly string _root;

    public UnprivilegedUser()
    {
        Run("useradd", "-M", "-s", "/usr/sbin/nologin", _name);
        string[] entry = File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Single(f => f[0] == _name);
        (Uid, Gid) = (uint.Parse(entry[2]), uint.Parse(entry[3]));
        AsUser = ["setpriv", $"--reuid={Uid}", $"--regid={Gid}", "--clear-groups"];
        _root = Directory.CreateTempSubdirectory("ckpt-unprivileged-").FullName;
        File.SetUnixFileMode(_root, Public);
        // The engine and, for a framework-dependent build, its neighbours (ckpt.dll, runtimeconfig).
        string engineFolder = Directory.CreateDirectory(Path.Combine(_root, "engine")).FullName;
        File.SetUnixFileMode(engineFolder, Public);
        string built = CkptPath();
        foreach (string file in Directory.GetFiles(Path.GetDirectoryName(built)!))
        {
            string copy = Path.Combine(engineFolder, Path.GetFileName(file));
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, Public);
        }
        Engine = Path.Combine(engineFolder, Path.GetFileName(built));
        Run(File.Exists("/usr/sbin/setcap") ? "/usr/sbin/setcap" : "/sbin/setcap", "cap_checkpoint_restore,cap_sys_ptrace+ep", Engine);
        Workload = Path.Combine(_root, "ckpt_state");
        File.Copy(RestoreWorkloads.Path("ckpt_state"), Workload);
        File.SetUnixFileMode(Workload, Public);
    }

    public uint Uid { get; }
    public uint Gid { get; }

    /// <summary>The prefix that runs a program as the user, with no supplementary groups.</summary>
    public string[] AsUser { get; }

    public string Engine { get; }
    public string Workload { get; }

    /// <summary>A new folder owned by the user (mode 0755).</summary>
    public string NewFolder()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_root, Guid.NewGuid().ToString("N"))).FullName;
        File.SetUnixFileMode(folder, Public);
        UnprivilegedModeTests.Chown(folder, Uid, Gid);
        return folder;
    }

    /// <summary>An empty file owned by the user.</summary>
    public string UserFile(string path)
    {
        File.WriteAllText(path, "");
        UnprivilegedModeTests.Chown(path, Uid, Gid);
        return path;
    }

    private static void Run(string program, params string[] arguments)
    {
        var (code, _, stderr) = RunCli(arguments, executable: program);
        if (code != 0) throw new InvalidOperationException($"{program} {string.Join(' ', arguments)}: exit {code}: {stderr}");
    }

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Run("userdel", _name);
    }
}
