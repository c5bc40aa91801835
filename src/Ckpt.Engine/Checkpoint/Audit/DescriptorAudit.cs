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
public static partial class DescriptorAudit
{
    public static void Check(DescriptorInfo fd)
    {
        bool handled = DescriptorKinds.All.Any(k => k.Matches(fd));
        if (!handled && AnonymousObjectName(fd.Target) is { } name) throw Refusal(fd, name);
        // Reopening /dev/ptmx makes a new terminal: a master is the terminal kinds' (both ends in the tree) or refused.
        if (!handled && IsPseudoTerminalMaster(fd.Stat)) throw Refusal(fd, "a pseudo-terminal master that is not /dev/ptmx (a legacy BSD pty, or a master of another devpts)");
        if (!handled || !IsPathKind(fd)) return;
        // A deleted file is its kind's to judge (refused, or saved with its contents), unless it is
        // a message queue already unlinked with mq_unlink.
        if (!fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal)) CheckReachable(fd);
        else if (FileSystemType(fd) == "mqueue") throw Refusal(fd, MessageQueue);
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
        fd.StatKind is FileKind.Regular or FileKind.Directory or FileKind.CharacterDevice or FileKind.BlockDevice;

    private const string MessageQueue = "a POSIX message queue (mq_open)";

    // /dev/ptmx (character device 5:2): every open of it is a new master; the masters' own device numbers
    // (major 128-135) are not reachable by any path.
    private static bool IsPseudoTerminalMaster(in Native.Stat stat)
    {
        if ((stat.Mode & 0xF000) != 0x2000) return false;
        ulong major = ((stat.RawDevice >> 8) & 0xfff) | ((stat.RawDevice >> 32) & ~0xfffUL), minor = (stat.RawDevice & 0xff) | ((stat.RawDevice >> 12) & ~0xffUL);
        return (major == 5 && minor == 2) || (major >= 128 && major <= 135);
    }

    private static CheckpointRefusedException Refusal(DescriptorInfo fd, string what) =>
        new($"fd {fd.Fd} of process {fd.Pid} is {what} ({fd.Target}), seen in /proc/{fd.Pid}/fd/{fd.Fd}: not checkpointed");

    // The restore reopens the recorded path: it must lead to this very file, here.
    private static void CheckReachable(DescriptorInfo fd)
    {
        if (fd.Target.StartsWith('/') && Native.stat(fd.Target, out Native.Stat now) == 0 && now.Device == fd.Stat.Device && now.Inode == fd.Stat.Inode)
            return;
        string fileSystem = FileSystemType(fd) ?? "unknown";
        string what = fileSystem switch
        {
            "nsfs" => "a namespace file",
            "mqueue" => MessageQueue,
            _ => $"a file on a {fileSystem} file system that is not reachable at that path from the engine (another mount namespace, or a file system without paths)",
        };
        throw Refusal(fd, what);
    }

    private const long MQUEUE_MAGIC = 0x19800202, NSFS_MAGIC = 0x6e736673;

    // The file system's magic number (statfs through the /proc/PID/fd link) for the internal mounts
    // mountinfo does not list (mqueue without a mount, nsfs); otherwise the type of the mount fdinfo's
    // mnt_id names in /proc/PID/mountinfo (after " - ").
    private static unsafe string? FileSystemType(DescriptorInfo fd)
    {
        byte* buffer = stackalloc byte[StatfsSize];
        if (statfs($"/proc/{fd.Pid}/fd/{fd.Fd}", buffer) == 0)
        {
            long magic = *(long*)buffer; // f_type, the first field
            if (magic == MQUEUE_MAGIC) return "mqueue";
            if (magic == NSFS_MAGIC) return "nsfs";
        }
        if (!fd.FdInfo.Fields.TryGetValue("mnt_id", out string? mountId)) return null;
        foreach (string line in File.ReadLines($"/proc/{fd.Pid}/mountinfo"))
        {
            if (!line.StartsWith(mountId + " ", StringComparison.Ordinal)) continue;
            int separator = line.IndexOf(" - ", StringComparison.Ordinal);
            return separator < 0 ? null : line[(separator + 3)..].Split(' ')[0];
        }
        return null;
    }

    private const int StatfsSize = 120; // struct statfs on x86-64

    [System.Runtime.InteropServices.LibraryImport("libc", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static unsafe partial int statfs(string path, byte* buffer);
}
