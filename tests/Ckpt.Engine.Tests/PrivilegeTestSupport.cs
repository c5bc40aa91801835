using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A real unprivileged user for one test (useradd -M, its own group; userdel afterwards), and how
/// to run a process as that user.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed partial class TestUser : IDisposable
{
    public string Name { get; }
    public uint Uid { get; }
    public uint Gid { get; }

    private TestUser(string name, uint uid, uint gid) => (Name, Uid, Gid) = (name, uid, gid);

    public static TestUser Create()
    {
        string name = $"ckpt-test-{Random.Shared.Next(10000, 99999)}";
        Run("/usr/sbin/useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name);
        string line = File.ReadAllLines("/etc/passwd").Single(l => l.StartsWith(name + ":", StringComparison.Ordinal));
        string[] fields = line.Split(':');
        return new TestUser(name, uint.Parse(fields[2]), uint.Parse(fields[3]));
    }

    public void Dispose() => Run("/usr/sbin/userdel", Name);

    /// <summary>Starts a program as this user (setpriv, its own groups, no capabilities) in /home, output to a log it owns.</summary>
    public int Start(string log, string program, params string[] arguments)
    {
        File.WriteAllText(log, "");
        Chown(log);
        return RestoreTestProcesses.SpawnIn("/home", log, "/usr/bin/setpriv",
            [$"--reuid={Uid}", $"--regid={Gid}", "--init-groups", "--inh-caps=-all", "--", program, .. arguments]);
    }

    /// <summary>Makes a file this user's, writable by nobody else: an image the user could have written.</summary>
    public void Chown(string path)
    {
        if (chown(path, Uid, Gid) != 0) throw new InvalidOperationException($"chown {path}: errno {Marshal.GetLastPInvokeError()}");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    public static void Run(string program, params string[] arguments)
    {
        var (code, _, stderr) = CheckpointTestSupport.RunCli(arguments, executable: program);
        if (code != 0) throw new InvalidOperationException($"{program} {string.Join(' ', arguments)}: exit {code}: {stderr}");
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chown(string path, uint uid, uint gid);
}

/// <summary>What /proc showed of a process at one moment.</summary>
internal sealed record ProcSnapshot(uint[] Uids, uint[] Gids, uint[] Groups, ulong CapInh, ulong CapPrm, ulong CapEff, ulong CapAmb,
    string[] Descriptors, string Cwd, string Maps)
{
    public bool HasEngineCredentials => Uids[1] == 0;
}

/// <summary>
/// Polls /proc/PID (status, fd links, cwd, maps) as fast as it can while a restore runs, to catch
/// what the process holds at any moment, not only at the end.
/// </summary>
internal sealed class ProcWatch : IDisposable
{
    private readonly int pid;
    private readonly Thread thread;
    private readonly List<ProcSnapshot> snapshots = [];
    private volatile bool stop;

    public ProcWatch(int pid)
    {
        this.pid = pid;
        thread = new Thread(Poll) { IsBackground = true, Name = $"watch {pid}" };
        thread.Start();
    }

    public IReadOnlyList<ProcSnapshot> Stop()
    {
        stop = true;
        thread.Join();
        return snapshots;
    }

    public void Dispose()
    {
        stop = true;
        thread.Join();
    }

    private void Poll()
    {
        while (!stop)
        {
            try
            {
                if (Take() is { } snapshot) snapshots.Add(snapshot);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private ProcSnapshot? Take()
    {
        string directory = $"/proc/{pid}";
        if (!Directory.Exists(directory)) return null;
        var status = Status(directory);
        if (status.GetValueOrDefault("State", "").StartsWith('Z')) return null;
        string[] descriptors = Directory.GetFiles($"{directory}/fd").Select(fd =>
        {
            try { return new FileInfo(fd).LinkTarget ?? ""; }
            catch (IOException) { return ""; }
        }).ToArray();
        string cwd = new DirectoryInfo($"{directory}/cwd").LinkTarget ?? "";
        string maps = File.ReadAllText($"{directory}/maps");
        // The reads are not one atomic look: keep only a snapshot whose credentials were the same
        // before and after them (they change once, from the engine's to the recorded ones).
        var after = Status(directory);
        if (after["Uid"] != status["Uid"] || after["Gid"] != status["Gid"] || after.GetValueOrDefault("Groups") != status.GetValueOrDefault("Groups")
            || after["CapEff"] != status["CapEff"] || after["CapPrm"] != status["CapPrm"]) return null;
        return new ProcSnapshot(Ids(status["Uid"]), Ids(status["Gid"]), Ids(status.GetValueOrDefault("Groups", "")),
            Hex(status["CapInh"]), Hex(status["CapPrm"]), Hex(status["CapEff"]), Hex(status["CapAmb"]),
            descriptors, cwd, maps);
    }

    private static Dictionary<string, string> Status(string directory) =>
        File.ReadAllLines($"{directory}/status").Select(l => l.Split(':', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());

    private static uint[] Ids(string text) => text.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(uint.Parse).ToArray();

    private static ulong Hex(string text) => ulong.Parse(text, System.Globalization.NumberStyles.HexNumber);
}

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static class PrivilegeAssert
{
    /// <summary>
    /// Every moment the process showed: while it has the engine's credentials it is an empty shell
    /// (the neutral program, the scratch area, its threads) holding none of <paramref name="imageFiles"/>
    /// as a mapping, none as a descriptor but <paramref name="executable"/> opened with the user's fs
    /// ids and groups, nor the image's cwd; with any other credentials it never has more
    /// than the user: every uid the user's, every gid and group the user's group, no capability at
    /// all. And never <paramref name="forbidden"/> as a descriptor or cwd.
    /// </summary>
    public static void NeverMoreThanUser(IReadOnlyList<ProcSnapshot> snapshots, TestUser user, string[] imageFiles, string executable, params string[] forbidden)
    {
        foreach (ProcSnapshot s in snapshots)
        {
            foreach (string path in forbidden)
            {
                Assert.DoesNotContain(path, s.Descriptors);
                Assert.NotEqual(path, s.Cwd);
            }
            if (s.HasEngineCredentials)
            {
                foreach (string path in imageFiles)
                {
                    Assert.DoesNotContain(path, s.Maps);
                    if (!s.Descriptors.Contains(path)) continue;
                    // The one file opened before the full credentials, the executable, with the user's fs ids and groups.
                    Assert.Equal(executable, path);
                    Assert.Equal((user.Uid, user.Gid), (s.Uids[3], s.Gids[3]));
                    Assert.All(s.Groups, gid => Assert.Equal(user.Gid, gid));
                }
                Assert.NotEqual("/home", s.Cwd);
                continue;
            }
            Assert.All(s.Uids, uid => Assert.Equal(user.Uid, uid));
            Assert.All(s.Gids, gid => Assert.Equal(user.Gid, gid));
            Assert.All(s.Groups, gid => Assert.Equal(user.Gid, gid));
            Assert.Equal(0ul, s.CapInh | s.CapPrm | s.CapEff | s.CapAmb);
        }
    }
}
