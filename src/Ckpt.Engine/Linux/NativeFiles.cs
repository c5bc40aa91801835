using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>The *at file calls the image output needs (ImageOutputFile): relative to an open directory, never following a final symlink.</summary>
public static unsafe partial class Native
{
    public const int O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_NONBLOCK = 0x800, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000,
        O_PATH = 0x200000, O_TMPFILE = 0x400000 | O_DIRECTORY;
    public const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_SYMLINK_FOLLOW = 0x400;
    public const uint S_IFMT = 0xf000, S_IFREG = 0x8000, S_IFLNK = 0xa000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int openat(int directory, string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int fstatat(int directory, string path, out Stat result, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int linkat(int oldDirectory, string oldPath, int newDirectory, string newPath, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int renameat(int oldDirectory, string oldPath, int newDirectory, string newPath);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlinkat(int directory, string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fchmod(int fd, uint mode);
}
