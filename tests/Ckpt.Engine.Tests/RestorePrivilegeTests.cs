using System.Text;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Engine.Security;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Issue 13, the privilege model (docs/SECURITY.md): a real unprivileged user's process is
/// checkpointed by root (a signed image), then edited as that user would edit it, with the image
/// library's own records and the checksum recomputed, and handed back as a file the user owns.
/// Root restores it: either the restore is refused naming why, or the process never holds more
/// than the user had, at any moment (/proc polled while the restore runs).
/// </summary>
[Collection(RestoreCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RestorePrivilegeTests : IDisposable
{
    private const int SYS_clock_nanosleep = 230;
    private const string Sleep = "/usr/bin/sleep";
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-privilege-").FullName;
    private readonly TestUser _user = TestUser.Create();
    // 11 characters, as long as "/etc/shadow": an edit keeps every record's length.
    private readonly string _log = $"/tmp/L{Random.Shared.Next(10000, 99999)}";

    public void Dispose()
    {
        _user.Dispose();
        File.Delete(_log);
        Directory.Delete(_directory, recursive: true);
    }

    // The user's `sleep 1000` in /home, checkpointed by root and killed; the image is root's (and signed).
    private (int Pid, string Image) CheckpointUsersSleeper()
    {
        int pid = _user.Start(_log, Sleep, "1000");
        string image = Path.Combine(_directory, "user.img");
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_clock_nanosleep);
            RestoreTestCheckpoint.Checkpoint(pid, image);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        return (pid, image);
    }

    private static (Exception? Error, IReadOnlyList<ProcSnapshot> Seen) RestoreWatched(int pid, string image, bool trustImage = false)
    {
        using var watch = new ProcWatch(pid);
        Exception? error = null;
        try { Restorer.Restore(new RestoreOptions(image, TrustImage: trustImage)); }
        catch (Exception e) { error = e; }
        Thread.Sleep(200); // a last look at the released process
        return (error, watch.Stop());
    }

    private static void Kill(int pid)
    {
        RestoreTestProcesses.Signal(pid, 9);
        RestoreTestProcesses.WaitUntilGone(pid);
    }

    private static string Status(int pid, string field) =>
        File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal))[(field.Length + 1)..].Trim();

    private static void ReplaceStrings(byte[] image, string from, string to, RecordType type, int fixedSize, int atLeast = 1)
    {
        Assert.Equal(from.Length, to.Length);
        int replaced = 0;
        foreach (var (recordType, offset, length) in ImageEdit.Records(image))
        {
            if (recordType != type || length < fixedSize + from.Length) continue;
            if (Encoding.UTF8.GetString(image, offset + fixedSize, from.Length) != from || (length > fixedSize + from.Length && image[offset + fixedSize + from.Length] != 0)) continue;
            Encoding.UTF8.GetBytes(to).CopyTo(image, offset + fixedSize);
            replaced++;
        }
        Assert.True(replaced >= atLeast, $"no {type} record holds {from}");
    }

    private static ulong OwnPermittedCapabilities() => ulong.Parse(Status(Environment.ProcessId, "CapPrm"), System.Globalization.NumberStyles.HexNumber);

    [Fact]
    public void UsersOwnImageRestoresAsThatUserAndNeverAsMore()
    {
        var (pid, image) = CheckpointUsersSleeper();
        // The user changes something harmless: the signature no longer holds, the file is theirs.
        ImageEdit.Edit(image, bytes => ImageEdit.Patch<HeaderRecord>(bytes, (h, _) => { h.CreatedUnixNanoseconds++; return h; }));
        _user.Chown(image);

        var (error, seen) = RestoreWatched(pid, image);
        Assert.Null(error);
        try
        {
            Assert.Equal($"{_user.Uid}\t{_user.Uid}\t{_user.Uid}\t{_user.Uid}", Status(pid, "Uid"));
            Assert.Equal("0000000000000000", Status(pid, "CapEff"));
            Assert.Equal(Sleep, new FileInfo($"/proc/{pid}/exe").LinkTarget);
            Assert.Equal("/home", new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget);
            Assert.Contains(seen, s => !s.HasEngineCredentials); // the poll saw the restore, not only the end
            PrivilegeAssert.NeverMoreThanUser(seen, _user, [_log, Sleep], Sleep);
        }
        finally
        {
            Kill(pid);
        }
    }

    [Fact]
    public void ImageClaimingRootAndCapabilitiesIsRefusedWithExitCode4UnlessRootTrustsIt()
    {
        var (pid, image) = CheckpointUsersSleeper();
        ulong capabilities = OwnPermittedCapabilities();
        ImageEdit.Edit(image, bytes => Assert.Equal(1, ImageEdit.Patch<CredentialsRecord>(bytes, (c, _) =>
        {
            c.Uid = c.Euid = c.Suid = c.Fsuid = 0;
            c.Gid = c.Egid = c.Sgid = c.Fsgid = 0;
            c.CapPermitted = c.CapEffective = capabilities;
            return c;
        })));
        _user.Chown(image);

        using (var watch = new ProcWatch(pid))
        {
            var (code, _, stderr) = CheckpointTestSupport.RunCli(["restore", "--input", image]);
            Assert.Equal(4, code);
            Assert.Contains($"is owned by uid {_user.Uid}", stderr);
            Assert.Contains($"at most as uid {_user.Uid} ({_user.Name})", stderr);
            Assert.Contains("uids 0/0/0/0", stderr);
            Assert.Contains($"capabilities (permitted 0x{capabilities:x}", stderr);
            Assert.Contains("--trust-image", stderr);
            Assert.Empty(watch.Stop()); // refused before any process existed
        }
        Assert.False(Directory.Exists($"/proc/{pid}"));

        // Root says it trusts the image: then, and only then, its credentials come back.
        var (error, _) = RestoreWatched(pid, image, trustImage: true);
        Assert.Null(error);
        try { Assert.Equal("0\t0\t0\t0", Status(pid, "Uid")); }
        finally { Kill(pid); }
    }

    [Fact]
    public void DescriptorPointedAtShadowFailsToOpenAsTheUser()
    {
        var (pid, image) = CheckpointUsersSleeper();
        Native.Stat shadow = Native.StatOrThrow("/etc/shadow", pid);
        ImageEdit.Edit(image, bytes =>
        {
            Assert.True(ImageEdit.Patch<FileRecord>(bytes, (f, offset) =>
            {
                if (ImageEdit.Trailing<FileRecord>(bytes, offset, f.PathLength) != _log) return null;
                (f.Device, f.Inode, f.Mode, f.FileSize) = (shadow.Device, shadow.Inode, shadow.Mode, shadow.Size);
                f.MtimeNanoseconds = shadow.ModifySeconds * 1_000_000_000 + shadow.ModifyNanoseconds;
                f.OpenFlags = (f.OpenFlags & ~3u) | 2; // O_RDWR
                return f;
            }) >= 1);
            ReplaceStrings(bytes, _log, "/etc/shadow", RecordType.File, FileRecord.Size);
        });
        _user.Chown(image);

        var (error, seen) = RestoreWatched(pid, image);
        var failure = Assert.IsType<RestoreException>(error);
        Assert.Equal("files", failure.Step);
        Assert.Equal(Errno.EACCES, Assert.IsType<SyscallException>(failure.InnerException).Errno);
        Assert.Contains("/etc/shadow", failure.Message);
        PrivilegeAssert.NeverMoreThanUser(seen, _user, [_log, Sleep], Sleep, "/etc/shadow");
        RestoreTestProcesses.WaitUntilGone(pid);
    }

    [Fact]
    public void CwdInRootFailsAsTheUser()
    {
        var (pid, image) = CheckpointUsersSleeper();
        ImageEdit.Edit(image, bytes => ReplaceStrings(bytes, "/home", "/root", RecordType.String, StringRecord.Size));
        _user.Chown(image);

        var (error, seen) = RestoreWatched(pid, image);
        var failure = Assert.IsType<RestoreException>(error);
        Assert.Equal("task state", failure.Step);
        Assert.Equal(Errno.EACCES, Assert.IsType<SyscallException>(failure.InnerException).Errno);
        Assert.Contains("chdir(/root)", failure.Message);
        PrivilegeAssert.NeverMoreThanUser(seen, _user, [_log, Sleep], Sleep, "/root");
        RestoreTestProcesses.WaitUntilGone(pid);
    }

    [Fact]
    public void GroupZeroIsRefused()
    {
        var (pid, image) = CheckpointUsersSleeper();
        ImageEdit.Edit(image, bytes =>
        {
            var group = ImageEdit.Records(bytes).Single(r => r.Type == RecordType.GroupInfo);
            Array.Clear(bytes, group.Offset + GroupInfoRecord.Size, 4); // the first supplementary group becomes 0
        });
        _user.Chown(image);

        var (error, seen) = RestoreWatched(pid, image);
        var refusal = Assert.IsType<ImageNotTrustedException>(error);
        Assert.Contains("it claims supplementary group 0", refusal.Message);
        Assert.Empty(seen);
    }

    [Theory]
    [InlineData(0u)]     // setuid root
    [InlineData(65534u)] // setuid nobody: a uid neither the engine nor the user has
    public void SetuidExecutableNeverChangesTheCredentials(uint owner)
    {
        var (pid, image) = CheckpointUsersSleeper();
        string setuid = $"/tmp/ckpt-s{Random.Shared.Next(100, 999)}"; // as long as /usr/bin/sleep
        File.Copy(Sleep, setuid, overwrite: true);
        try
        {
            TestUser.Run("/usr/bin/chown", $"{owner}:{owner}", setuid);
            TestUser.Run("/usr/bin/chmod", "6755", setuid);
            ImageEdit.Edit(image, bytes => ReplaceStrings(bytes, Sleep, setuid, RecordType.String, StringRecord.Size));
            _user.Chown(image);

            var (error, seen) = RestoreWatched(pid, image);
            Assert.Null(error);
            try
            {
                Assert.Equal(setuid, new FileInfo($"/proc/{pid}/exe").LinkTarget);
                Assert.Equal($"{_user.Uid}\t{_user.Uid}\t{_user.Uid}\t{_user.Uid}", Status(pid, "Uid"));
                Assert.DoesNotContain(seen, s => s.Uids.Contains(65534u) || s.Gids.Contains(65534u));
                PrivilegeAssert.NeverMoreThanUser(seen, _user, [_log, Sleep, setuid], setuid);
            }
            finally
            {
                Kill(pid);
            }
        }
        finally
        {
            File.Delete(setuid);
        }
    }

    [Fact]
    public void SignedImageOfRootsProcessRestoresAsRootWhoeverOwnsTheFileUntilChanged()
    {
        string image = Path.Combine(_directory, "root.img");
        int pid = RestoreTestProcesses.StartSleeper();
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_clock_nanosleep);
            RestoreTestCheckpoint.Checkpoint(pid, image);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        File.SetUnixFileMode(image, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        string capabilities = Status(Environment.ProcessId, "CapEff");

        // Root's own file: root's credentials.
        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try { Assert.Equal(("0\t0\t0\t0", capabilities), (Status(pid, "Uid"), Status(pid, "CapEff"))); }
        finally { Kill(pid); }

        // Handed to the user unchanged: the signature still proves a root engine wrote every byte.
        _user.Chown(image);
        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try { Assert.Equal("0\t0\t0\t0", Status(pid, "Uid")); }
        finally { Kill(pid); }

        // Changed by the user: the signature fails, and the user may not restore root.
        ImageEdit.Edit(image, bytes => ImageEdit.Patch<HeaderRecord>(bytes, (h, _) => { h.CreatedUnixNanoseconds++; return h; }));
        _user.Chown(image);
        var refusal = Assert.Throws<ImageNotTrustedException>(() => Restorer.Restore(new RestoreOptions(image)));
        Assert.Contains("the signature does not match the image's contents", refusal.Message);
        Assert.Contains("uids 0/0/0/0", refusal.Message);
        Assert.False(Directory.Exists($"/proc/{pid}"));
    }
}
