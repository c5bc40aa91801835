using System.Runtime.InteropServices;

namespace Ckpt.Engine.Restore;

/// <summary>stat(2) of a path: the identity a restore compares with the image's FILE record.</summary>
public readonly record struct FileIdentity(ulong Device, ulong Inode, uint Mode, long Size, long MtimeNanoseconds)
{
    /// <summary>Null when the path does not exist (or cannot be reached).</summary>
    public static unsafe FileIdentity? Of(string path)
    {
        byte* stat = stackalloc byte[256];
        if (StatNative(path, stat) != 0) return null;
        return new FileIdentity(
            Device: *(ulong*)stat,
            Inode: *(ulong*)(stat + 8),
            Mode: *(uint*)(stat + 24),
            Size: *(long*)(stat + 48),
            MtimeNanoseconds: *(long*)(stat + 88) * 1_000_000_000 + *(long*)(stat + 96));
    }

    /// <summary>lstat(2)'s st_mode: what the path itself is (a symbolic link is not followed); null when missing.</summary>
    public static unsafe uint? ModeOfLink(string path)
    {
        byte* stat = stackalloc byte[256];
        return LstatNative(path, stat) != 0 ? null : *(uint*)(stat + 24);
    }

    [DllImport("libc", EntryPoint = "lstat", SetLastError = true)]
    private static extern unsafe int LstatNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte* buffer);

    // struct stat (x86-64): st_dev 0, st_ino 8, st_mode 24, st_size 48, st_mtim 88 (144 bytes).
    [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
    private static extern unsafe int StatNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte* buffer);
}
