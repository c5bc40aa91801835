using System.Security.Cryptography;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using static Ckpt.Engine.Security.SecurityNative;

namespace Ckpt.Engine.Security;

/// <summary>
/// The host's image key, /etc/ckpt/image.key: 32 random bytes only root can read, created by the
/// first checkpoint root makes (in /etc/ckpt, mode 0700; the key 0600, written to a temporary file
/// and linked into place, so two engines racing agree on one key). A checkpoint by root signs its
/// image with it; a restore by root verifies signatures with it (docs/SECURITY.md). A key that
/// anyone but root could have read or replaced (not owned by root, not 0600, a directory others
/// can write) is refused by name, since a signature made with it proves nothing.
/// </summary>
public static class ImageKeyFile
{
    public const string Directory = "/etc/ckpt";
    public const string Path = Directory + "/image.key";

    private const int O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;

    /// <summary>For a checkpoint: the key (created on first use) when running as root; else null (the image is not signed).</summary>
    public static ImageSigningKey? ForCheckpoint()
    {
        if (geteuid() != 0) return null;
        if (!File.Exists(Path)) Create();
        return Load();
    }

    /// <summary>For a restore: the key when running as root and one exists; else null (no signature can be verified).</summary>
    public static ImageSigningKey? ForRestore() => geteuid() != 0 || !File.Exists(Path) ? null : Load();

    private static unsafe void Create()
    {
        if (mkdir(Directory, 0x1c0 /* 0700 */) != 0 && Native.LastErrno != Errno.EEXIST)
            throw new SyscallException("mkdir", Native.LastErrno, Environment.ProcessId, Directory);
        RequireRootOnlyDirectory();
        string temporary = $"{Path}.{Environment.ProcessId}.{Guid.NewGuid():N}";
        try
        {
            // O_EXCL: never through a symbolic link, never over an existing file.
            int fd = Native.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0x180 /* 0600 */);
            if (fd < 0) throw new SyscallException("open", Native.LastErrno, Environment.ProcessId, temporary);
            try
            {
                byte[] key = RandomNumberGenerator.GetBytes(ImageSigningKey.KeyLength);
                fixed (byte* bytes = key)
                {
                    if (Native.pwrite(fd, bytes, (nuint)key.Length, 0) != key.Length || fsync(fd) != 0)
                        throw new SyscallException("write", Native.LastErrno, Environment.ProcessId, temporary);
                }
            }
            finally
            {
                Native.close(fd);
            }
            if (link(temporary, Path) != 0 && Native.LastErrno != Errno.EEXIST)
                throw new SyscallException("link", Native.LastErrno, Environment.ProcessId, $"{temporary} to {Path}");
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static unsafe ImageSigningKey Load()
    {
        RequireRootOnlyDirectory();
        int fd = Native.open(Path, Native.O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd < 0) throw new SyscallException("open", Native.LastErrno, Environment.ProcessId, $"the image key {Path}");
        try
        {
            Native.Stat stat = Fstat(fd, Path);
            if ((stat.Mode & S_IFMT) != S_IFREG || stat.Uid != 0 || (stat.Mode & 0x3f) != 0 || stat.Size != ImageSigningKey.KeyLength)
                throw new UnsafeImageKeyException($"the image key {Path} must be a regular file of {ImageSigningKey.KeyLength} bytes owned by root " +
                    $"with mode 0600 (it is uid {stat.Uid}, mode {Convert.ToString(stat.Mode & 0xfff, 8)}, {stat.Size} bytes): anyone who can read it can sign images; remove it to make a new one");
            byte[] key = new byte[ImageSigningKey.KeyLength];
            fixed (byte* buffer = key)
            {
                if (Native.pread(fd, buffer, (nuint)key.Length, 0) != key.Length)
                    throw new SyscallException("pread", Native.LastErrno, Environment.ProcessId, Path);
            }
            return new ImageSigningKey(key);
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static void RequireRootOnlyDirectory()
    {
        Native.Stat stat = Native.StatOrThrow(Directory, Environment.ProcessId);
        if ((stat.Mode & S_IFMT) != S_IFDIR || stat.Uid != 0 || (stat.Mode & (S_IWGRP | S_IWOTH)) != 0)
            throw new UnsafeImageKeyException($"{Directory} must be a directory owned by root that only root can write " +
                $"(it is uid {stat.Uid}, mode {Convert.ToString(stat.Mode & 0xfff, 8)}): someone else could replace the image key");
    }
}

/// <summary>The image key is not what only root could have read and written.</summary>
public sealed class UnsafeImageKeyException(string message) : Exception(message);
