using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// Per descriptor, before its kind inspects it (FilesCheckpoint.Inspect, which also runs as a dry run
/// before the freeze): file locks held through it, an anonymous-inode object no kind saves (named by
/// what it is: io_uring, userfaultfd, pidfd, fanotify, perf event, bpf object, ...), and a file that
/// looks like a path but is not reachable by that path from the engine (a namespace file, a POSIX
/// message queue, a file of another mount namespace), which a restore would reopen wrongly or not at all.
/// </summary>
public static class DescriptorAudit
{
    public static void Check(DescriptorInfo fd)
    {
        PosixTimersAndLocksAudit.CheckLocks(fd);
        bool handled = DescriptorKinds.All.Any(k => k.Matches(fd));
        if (!handled && AnonymousObjectName(fd.Target) is { } name)
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is {name} ({fd.Target} in /proc/{fd.Pid}/fd): not checkpointed");
        if (handled && IsPathKind(fd)) CheckReachable(fd);
    }

    /// <summary>What an anonymous inode is, from its /proc/PID/fd link ("anon_inode:[io_uring]", "anon_inode:bpf-map").</summary>
    public static string? AnonymousObjectName(string target)
    {
        if (!target.StartsWith("anon_inode:", StringComparison.Ordinal)) return null;
        string inode = target["anon_inode:".Length..].Trim('[', ']');
        return inode switch
        {
            "io_uring" => "an io_uring instance (io_uring_setup)",
            "userfaultfd" => "a userfaultfd",
            "pidfd" => "a pidfd (pidfd_open or CLONE_PIDFD)",
            "fanotify" => "a fanotify group",
            "perf_event" => "a perf event (perf_event_open)",
            "bpf-map" or "bpf-prog" or "bpf_link" or "bpf-token" or "bpf_iter" => $"a bpf object ({inode})",
            "eventpoll" => "an epoll instance",
            "signalfd" => "a signalfd",
            "timerfd" => "a timerfd",
            "inotify" => "an inotify instance",
            "eventfd" => "an eventfd",
            "kvm-vm" or "kvm-vcpu" => $"a KVM object ({inode})",
            "landlock-ruleset" => "a Landlock ruleset",
            "dmabuf" or "sync_file" => $"a device buffer ({inode})",
            _ => $"an anonymous kernel object ({inode})",
        };
    }

    private static bool IsPathKind(DescriptorInfo fd) =>
        fd.StatKind is FileKind.Regular or FileKind.Directory or FileKind.CharacterDevice or FileKind.BlockDevice
        && !fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal);

    // The restore reopens the recorded path: it must lead to this very file, here.
    private static void CheckReachable(DescriptorInfo fd)
    {
        if (fd.Target.StartsWith('/') && Native.stat(fd.Target, out Native.Stat now) == 0 && now.Device == fd.Stat.Device && now.Inode == fd.Stat.Inode)
            return;
        // nsfs files link as "net:[4026531840]"; their mount is internal, not in mountinfo.
        string fileSystem = FileSystemType(fd.Pid, fd.FdInfo) ?? (fd.Target.Contains(":[", StringComparison.Ordinal) ? "nsfs" : "unknown");
        string what = fileSystem switch
        {
            "nsfs" => "a namespace file",
            "mqueue" => "a POSIX message queue (mq_open)",
            _ => $"a file on a {fileSystem} file system that is not reachable at that path from the engine (another mount namespace, or a file system without paths)",
        };
        throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is {what} ({fd.Target} in /proc/{fd.Pid}/fd): not checkpointed");
    }

    // fdinfo's mnt_id names the mount in /proc/PID/mountinfo; its file system type follows " - ".
    private static string? FileSystemType(int pid, ProcFdInfo info)
    {
        if (!info.Fields.TryGetValue("mnt_id", out string? mountId)) return null;
        foreach (string line in File.ReadLines($"/proc/{pid}/mountinfo"))
        {
            if (!line.StartsWith(mountId + " ", StringComparison.Ordinal)) continue;
            int separator = line.IndexOf(" - ", StringComparison.Ordinal);
            return separator < 0 ? null : line[(separator + 3)..].Split(' ')[0];
        }
        return null;
    }
}
