using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files;

/// <summary>
/// The descriptor table from /proc/PID/fd (+ fdinfo for position and flags, stat for identity).
/// Regular files, directories and devices are supported; any other kind (pipe, socket, anon inode)
/// or a deleted file is refused, naming the fd. <see cref="Inspect"/> runs before anything is
/// written so a refusal leaves no half image; <see cref="Write"/> writes FILE_TABLE and its entries.
/// </summary>
public sealed class FilesCheckpoint
{
    private const uint O_CLOEXEC = 0x80000;
    private readonly List<(FileRecord File, string Path, FileDescriptorRecord Descriptor)> _entries = [];

    public static FilesCheckpoint Inspect(int pid, ObjRefs objRefs)
    {
        var table = new FilesCheckpoint();
        var fds = Directory.GetFiles($"/proc/{pid}/fd").Select(p => int.Parse(Path.GetFileName(p))).Order();
        foreach (int fd in fds)
        {
            string target = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "";
            Native.Stat stat = Native.StatOrThrow($"/proc/{pid}/fd/{fd}", pid);
            FileKind kind = OpenFileRecords.KindOf(stat.Mode);
            if (target.StartsWith("anon_inode:", StringComparison.Ordinal)) kind = FileKind.Other;
            if (kind is not (FileKind.Regular or FileKind.Directory or FileKind.CharacterDevice or FileKind.BlockDevice))
                throw new CheckpointRefusedException($"fd {fd} of process {pid} is a {Describe(kind)} ({target}): only files, directories and devices are supported");
            if (target.EndsWith(" (deleted)", StringComparison.Ordinal))
                throw new CheckpointRefusedException($"fd {fd} of process {pid} refers to a deleted file ({target}): unsupported");
            ProcFdInfo info = ProcFdInfo.Read(pid, fd);
            int objRef = objRefs.Next();
            table._entries.Add((OpenFileRecords.Record(objRef, kind, stat, target, info.Flags, info.Position), target,
                new FileDescriptorRecord { Fd = fd, FileObjRef = objRef, CloseOnExec = (info.Flags & O_CLOEXEC) != 0 ? 1 : 0 }));
        }
        return table;
    }

    public void Write(ImageWriter writer, int tableObjRef)
    {
        writer.Write(new FileTableRecord { ObjRef = tableObjRef, DescriptorCount = _entries.Count });
        foreach (var (file, path, descriptor) in _entries)
        {
            writer.Write(file, Encoding.UTF8.GetBytes(path));
            writer.Write(descriptor);
        }
    }

    private static string Describe(FileKind kind) => kind switch
    {
        FileKind.Pipe => "pipe",
        FileKind.Socket => "socket",
        FileKind.Other => "special file (eventfd, epoll, signalfd, timerfd or similar)",
        _ => kind.ToString().ToLowerInvariant(),
    };
}

/// <summary>FileRecord construction from stat(2), shared by descriptors and file mappings.</summary>
public static class OpenFileRecords
{
    public static FileKind KindOf(uint mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        0x1000 => FileKind.Pipe,
        0xC000 => FileKind.Socket,
        0xA000 => FileKind.Symlink,
        _ => FileKind.Other,
    };

    public static FileRecord Record(int objRef, FileKind kind, in Native.Stat stat, string path, uint openFlags, long position) => new()
    {
        ObjRef = objRef, Kind = kind, OpenFlags = openFlags, Mode = stat.Mode, Position = position,
        Device = stat.Device, Inode = stat.Inode, RawDevice = stat.RawDevice, FileSize = stat.Size,
        MtimeNanoseconds = stat.ModifySeconds * 1_000_000_000 + stat.ModifyNanoseconds,
        PathLength = (uint)Encoding.UTF8.GetByteCount(path),
    };
}
