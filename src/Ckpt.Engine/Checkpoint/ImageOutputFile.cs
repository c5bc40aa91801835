using Ckpt.Engine.Linux;
using Microsoft.Win32.SafeHandles;
using static Ckpt.Engine.Linux.Native;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// The file `ckpt checkpoint --output PATH` writes (docs/SECURITY.md, "Checkpoint side"). An image
/// holds the process's memory (keys, passwords), so:
/// - it is created with mode 0600, owned by whoever runs the engine;
/// - it is never written through a symbolic link: a link at PATH is refused, and the finished image
///   is put in place with link or rename, which replace a name and never follow one;
/// - nothing at PATH changes before the image is complete and on storage: it is written to an
///   unnamed file (O_TMPFILE) in PATH's directory, or where the file system has none to a new file
///   created there with O_EXCL|O_NOFOLLOW, fsynced, then linked to PATH (which fails if anything
///   appeared there meanwhile) or, with Replace, renamed over it; then the directory is fsynced;
/// - an existing file at PATH is refused before the target is touched unless Replace is given,
///   and survives every failure;
/// - a failed checkpoint leaves nothing behind (an unnamed file vanishes with the engine, even a
///   killed one; a named one is removed).
/// An existing FIFO or character device at PATH is a stream, not a stored image: it is opened for
/// writing as it is (nothing created, nothing truncated), as standard output is for "-".
/// </summary>
public sealed class ImageOutputFile : IDisposable
{
    private const uint ImageMode = 0x180; // 0600
    private const int EISDIR = 21, EOPNOTSUPP = 95;

    private readonly string path, name;
    private readonly bool directoryReadable, replace;
    private int directory;
    private string? temporaryName; // the O_EXCL fallback's name while it exists
    private bool placed;

    private ImageOutputFile(string path, string name, int directory, bool directoryReadable, bool replace)
    {
        (this.path, this.name, this.directory, this.directoryReadable, this.replace) = (path, name, directory, directoryReadable, replace);
    }

    /// <summary>Where the image goes until Commit; flushed by the checkpoint, never closed by it.</summary>
    public FileStream Stream { get; private set; } = null!;

    /// <summary>PATH was a FIFO or character device, written directly: there is nothing to put in place.</summary>
    public bool IsStream { get; private set; }

    /// <summary>Checks PATH and opens the file the image is written to; throws before anything is created if PATH is refused.</summary>
    public static ImageOutputFile Open(string outputPath, bool replace)
    {
        string full = Path.GetFullPath(outputPath);
        string name = Path.GetFileName(full);
        if (name.Length == 0 || name is "." or "..")
            throw new ImageOutputRefusedException($"the output '{outputPath}' names a directory, not an image file", exists: true);
        string directoryPath = Path.GetDirectoryName(full) ?? "/";
        // A readable descriptor of the directory, to fsync it; a write-only drop folder still works without.
        int directory = openat(AT_FDCWD, directoryPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        bool readable = directory >= 0;
        if (!readable && LastErrno == Errno.EACCES) directory = openat(AT_FDCWD, directoryPath, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (directory < 0) throw new ImageOutputException("open the directory of", full, LastErrno);
        var output = new ImageOutputFile(full, name, directory, readable, replace);
        try
        {
            output.OpenTarget();
            return output;
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    private void OpenTarget()
    {
        if (fstatat(directory, name, out Stat existing, AT_SYMLINK_NOFOLLOW) == 0)
        {
            switch (existing.Mode & S_IFMT)
            {
                case S_IFLNK:
                    throw new ImageOutputRefusedException($"'{path}' is a symbolic link: an image is never written through one (remove it or choose another path)", exists: true);
                case S_IFIFO or S_IFCHR:
                    OpenStream();
                    return;
                case S_IFREG when !replace:
                    throw new ImageOutputRefusedException($"the image '{path}' already exists: use --force to replace it", exists: true);
                case S_IFREG:
                    break;
                default:
                    throw new ImageOutputRefusedException($"'{path}' is {Restore.RestoreValidation.KindOfMode(existing.Mode)}, not an image file", exists: true);
            }
        }
        else if (LastErrno != Errno.ENOENT)
        {
            throw new ImageOutputException("look at", path, LastErrno);
        }
        int fd = openat(directory, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, (int)ImageMode);
        if (fd < 0 && LastErrno is EOPNOTSUPP or EISDIR or Errno.EINVAL) fd = CreateNamedTemporary();
        if (fd < 0) throw new ImageOutputException("create a file beside", path, LastErrno);
        Stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 1);
        // The umask can only take bits away from 0600; set exactly 0600 so the owner can read it back.
        if (fchmod(fd, ImageMode) != 0) throw new ImageOutputException("set mode 0600 on the image for", path, LastErrno);
    }

    private void OpenStream()
    {
        int fd = openat(directory, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd < 0) throw new ImageOutputException("open", path, LastErrno);
        Stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 1);
        IsStream = true;
    }

    // For file systems without O_TMPFILE: a new name nobody else can have made (O_EXCL), never a link (O_NOFOLLOW).
    private int CreateNamedTemporary()
    {
        for (int attempt = 0; attempt < 16; attempt++)
        {
            string candidate = TemporaryName();
            int fd = openat(directory, candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (int)ImageMode);
            if (fd >= 0)
            {
                temporaryName = candidate;
                return fd;
            }
            if (LastErrno != Errno.EEXIST) return fd;
        }
        return -1;
    }

    private string TemporaryName() => $".{name}.{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8))}.ckpt-tmp";

    /// <summary>
    /// The image is complete: on storage, then at PATH (linked, or renamed over it with Replace),
    /// then the directory entry on storage. Throws, leaving PATH as it was, if PATH was taken meanwhile.
    /// </summary>
    public void Commit()
    {
        if (placed) return;
        Stream.Flush();
        if (IsStream)
        {
            placed = true;
            return;
        }
        int fd = (int)Stream.SafeFileHandle.DangerousGetHandle();
        if (fsync(fd) != 0) throw new ImageOutputException("fsync the image for", path, LastErrno);
        if (temporaryName is null) PlaceUnnamed(fd);
        else PlaceNamed();
        placed = true;
        if (directoryReadable && fsync(directory) != 0) throw new ImageOutputException("fsync the directory of", path, LastErrno);
    }

    private void PlaceUnnamed(int fd)
    {
        // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc link works for anyone (open(2), O_TMPFILE).
        string self = $"/proc/self/fd/{fd}";
        if (!replace)
        {
            if (linkat(AT_FDCWD, self, directory, name, AT_SYMLINK_FOLLOW) != 0) throw LinkFailure(LastErrno);
            return;
        }
        string candidate = TemporaryName();
        if (linkat(AT_FDCWD, self, directory, candidate, AT_SYMLINK_FOLLOW) != 0) throw new ImageOutputException("link the image beside", path, LastErrno);
        temporaryName = candidate;
        PlaceNamed();
    }

    private void PlaceNamed()
    {
        if (replace)
        {
            if (renameat(directory, temporaryName!, directory, name) != 0) throw new ImageOutputException("rename the image to", path, LastErrno);
        }
        else if (linkat(directory, temporaryName!, directory, name, 0) != 0)
        {
            throw LinkFailure(LastErrno);
        }
        else
        {
            unlinkat(directory, temporaryName!, 0);
        }
        temporaryName = null;
    }

    private Exception LinkFailure(int errno) => errno == Errno.EEXIST
        ? new ImageOutputRefusedException($"'{path}' appeared while the checkpoint ran; it was left as it is and the image discarded (use --force to replace it)", exists: true)
        : new ImageOutputException("link the image to", path, errno);

    /// <summary>Closes the image; if it was never committed, nothing of it stays on the file system.</summary>
    public void Dispose()
    {
        Stream?.Dispose();
        if (temporaryName is not null) unlinkat(directory, temporaryName, 0);
        temporaryName = null;
        if (directory >= 0) close(directory);
        directory = -1;
    }
}
