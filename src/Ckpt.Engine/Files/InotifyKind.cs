using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// inotify instances. Checkpoint: each "inotify wd:.. ino:.. sdev:.. mask:.. f_handle:.." line of
/// /proc/PID/fdinfo/N is a watch; its path is found from the file handle (open_by_handle_at on a mount
/// of that filesystem, then the new descriptor's link) and checked to be that inode. Queued events are
/// not saved: an instance with any (FIONREAD on a copy of the descriptor taken with pidfd_getfd, which
/// reads nothing) is refused, and so are watch descriptors with a gap (a removed watch), which a fresh
/// instance cannot give back. Restore: the watched paths must still be the recorded inodes; the
/// instance is made with inotify_init1 and each watch added in order (IN_DONT_FOLLOW: the path is the
/// inode's own), the kernel giving descriptors 1, 2, ... as recorded (checked).
/// </summary>
public sealed partial class InotifyKind : IDescriptorKind
{
    private const string Target = "anon_inode:inotify";
    private const uint O_NONBLOCK = 0x800, IN_DONT_FOLLOW = 0x02000000;
    private const int O_PATH = 0x200000, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000, FIONREAD = 0x541B;

    public bool Matches(DescriptorInfo fd) => fd.Target == Target;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        var watches = File.ReadLines($"/proc/{fd.Pid}/fdinfo/{fd.Fd}")
            .Where(l => l.StartsWith("inotify wd:", StringComparison.Ordinal))
            .Select(l => ParseWatch(fd, l))
            .OrderBy(w => w.Watch.WatchDescriptor).ToList();
        for (int i = 0; i < watches.Count; i++)
        {
            if (watches[i].Watch.WatchDescriptor != i + 1)
                throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is an inotify instance whose watch descriptors are {string.Join(", ", watches.Select(w => w.Watch.WatchDescriptor))}: a gap (a removed watch) cannot be given back by a new instance, unsupported");
        }
        int queued = QueuedBytes(fd);
        if (queued != 0)
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is an inotify instance with {queued} bytes of queued events, which are not saved: read them before checkpointing");
        FileRecord file = OpenFileRecords.Record(objRef, FileKind.Inotify, fd.Stat, Target, fd.FdInfo.Flags, 0);
        var inotify = new InotifyRecord { ObjRef = objRef, Flags = fd.FdInfo.Flags & O_NONBLOCK, WatchCount = watches.Count };
        return new Inspected(file, inotify, watches);
    }

    private sealed record Inspected(FileRecord File, InotifyRecord Inotify, List<(InotifyWatchRecord Watch, string Path)> Watches) : IInspectedFile
    {
        public void Write(ImageWriter writer)
        {
            writer.Write(File, Encoding.UTF8.GetBytes(Target));
            writer.Write(Inotify);
            foreach (var (watch, path) in Watches) writer.Write(watch, Encoding.UTF8.GetBytes(path));
        }
    }

    // "inotify wd:2 ino:35a sdev:fe00000 mask:4000002 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:5a03000000000000"
    private static (InotifyWatchRecord Watch, string Path) ParseWatch(DescriptorInfo fd, string line)
    {
        var fields = line["inotify ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(f => f.Split(':', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        string where = $"/proc/{fd.Pid}/fdinfo/{fd.Fd}";
        ulong Hex(string key) => fields.TryGetValue(key, out string? text) && ulong.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong value)
            ? value : throw new FormatException($"{where}: inotify line without a hex {key}: '{line}'");
        int wd = fields.TryGetValue("wd", out string? wdText) && int.TryParse(wdText, CultureInfo.InvariantCulture, out int parsed) ? parsed
            : throw new FormatException($"{where}: inotify line without wd: '{line}'");
        ulong kernelDevice = Hex("sdev"), inode = Hex("ino");
        uint major = (uint)(kernelDevice >> 20), minor = (uint)(kernelDevice & 0xfffff);
        if (!fields.TryGetValue("f_handle", out string? handle) || !fields.TryGetValue("fhandle-type", out string? handleType))
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid}: inotify watch {wd} has no file handle in {where} (a filesystem without file handles): unsupported");
        string path = PathOf(fd, wd, major, minor, inode, Convert.FromHexString(handle), int.Parse(handleType, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        ulong device = ((ulong)(major & 0xfff) << 8) | ((ulong)(major & ~0xfffu) << 32) | (minor & 0xff) | ((ulong)(minor & ~0xffu) << 12);
        var watch = new InotifyWatchRecord
        {
            WatchDescriptor = wd, Mask = (uint)Hex("mask"), Device = device, Inode = inode, PathLength = (uint)Encoding.UTF8.GetByteCount(path),
        };
        return (watch, path);
    }

    /// <summary>The path of the watched inode: open_by_handle_at through a mount of its filesystem, then the link of that descriptor.</summary>
    private static unsafe string PathOf(DescriptorInfo fd, int wd, uint major, uint minor, ulong inode, byte[] handle, int handleType)
    {
        string problem = $"fd {fd.Fd} of process {fd.Pid}: inotify watch {wd} (inode {inode} on device {major}:{minor})";
        foreach (string mountPoint in MountPointsOf(fd.Pid, major, minor))
        {
            int mount = open(mountPoint, O_DIRECTORY | O_CLOEXEC); // O_RDONLY: open_by_handle_at refuses an O_PATH mount descriptor (EBADF)
            if (mount < 0) continue;
            try
            {
                byte[] fileHandle = new byte[8 + handle.Length];
                BitConverter.TryWriteBytes(fileHandle.AsSpan(0), handle.Length);
                BitConverter.TryWriteBytes(fileHandle.AsSpan(4), handleType);
                handle.CopyTo(fileHandle, 8);
                int opened;
                fixed (byte* pointer = fileHandle) opened = open_by_handle_at(mount, pointer, O_PATH | O_CLOEXEC);
                if (opened < 0) continue;
                try
                {
                    string? path = new FileInfo($"/proc/self/fd/{opened}").LinkTarget;
                    if (path is not null && path.StartsWith('/') && FileIdentity.Of(path) is { } identity && identity.Inode == inode)
                        return path;
                }
                finally { Native.close(opened); }
            }
            finally { Native.close(mount); }
        }
        throw new CheckpointRefusedException($"{problem}: the watched file has no path this engine can reach (deleted, or on a mount it cannot see): unsupported");
    }

    private static IEnumerable<string> MountPointsOf(int pid, uint major, uint minor)
    {
        string device = $"{major}:{minor}";
        // "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw": mounts of the whole filesystem (root "/") first.
        return File.ReadLines($"/proc/{pid}/mountinfo").Select(l => l.Split(' ')).Where(f => f.Length > 4 && f[2] == device)
            .OrderBy(f => f[3] == "/" ? 0 : 1).Select(f => Unescape(f[4]));
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo (three octal digits). No Regex: see InFlightFiles.KindName.
    private static string Unescape(string field)
    {
        if (!field.Contains('\\')) return field;
        var text = new System.Text.StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field[i + 1]) && IsOctal(field[i + 2]) && IsOctal(field[i + 3]))
            {
                text.Append((char)((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
                i += 3;
            }
            else text.Append(field[i]);
        }
        return text.ToString();
    }

    private static bool IsOctal(char c) => c is >= '0' and <= '7';

    /// <summary>Bytes of queued events, by FIONREAD on a copy of the target's descriptor (the queue is not touched).</summary>
    private static unsafe int QueuedBytes(DescriptorInfo fd)
    {
        int pidfd = Native.pidfd_open(fd.Pid, 0);
        if (pidfd < 0) throw new SyscallException("pidfd_open", Native.LastErrno, fd.Pid);
        try
        {
            int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd.Fd, 0);
            if (copy < 0) throw new SyscallException("pidfd_getfd", Native.LastErrno, fd.Pid, $"fd {fd.Fd}");
            try
            {
                int queued;
                if (ioctl(copy, FIONREAD, &queued) != 0) throw new SyscallException("ioctl(FIONREAD)", Native.LastErrno, fd.Pid, $"fd {fd.Fd}");
                return queued;
            }
            finally { Native.close(copy); }
        }
        finally { Native.close(pidfd); }
    }

    private const long SYS_pidfd_getfd = 438;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int open_by_handle_at(int mountFd, byte* handle, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int ioctl(int fd, ulong request, int* result);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3);

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Inotify;

    public void Validate(FileImage file, int fd)
    {
        InotifyImage inotify = file.Inotify ?? throw new RestoreRefusedException($"fd {fd} is an inotify instance without its INOTIFY record");
        foreach (var (watch, path) in inotify.Watches)
        {
            FileIdentity identity = FileIdentity.Of(path)
                ?? throw new RestoreRefusedException($"fd {fd}: inotify watch {watch.WatchDescriptor} watched {path}, which no longer exists");
            if (identity.Device != watch.Device || identity.Inode != watch.Inode)
                throw new RestoreRefusedException($"fd {fd}: inotify watch {watch.WatchDescriptor} watched {path}, which is another file now (inode {identity.Inode}, was {watch.Inode})");
        }
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        InotifyImage inotify = file.Inotify!;
        long created = syscalls.Call($"inotify_init1(0x{inotify.Record.Flags:x}) for fd {fd}", SYS_inotify_init1, inotify.Record.Flags & O_NONBLOCK);
        foreach (var (watch, path) in inotify.Watches)
        {
            scratch.Reset();
            long wd = syscalls.Call($"inotify_add_watch of {path} (watch {watch.WatchDescriptor}) for fd {fd}", SYS_inotify_add_watch,
                (ulong)created, scratch.PutString(path), watch.Mask | IN_DONT_FOLLOW);
            if (wd != watch.WatchDescriptor)
                throw new IOException($"fd {fd}: inotify_add_watch of {path} gave watch descriptor {wd}, the image recorded {watch.WatchDescriptor}");
        }
        return created;
    }
}
