using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Security;

/// <summary>The libc calls the privilege checks need: ids of the engine, fstat, the user database.</summary>
internal static unsafe partial class SecurityNative
{
    public const uint S_IFMT = 0xf000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IWGRP = 0x10, S_IWOTH = 0x2;

    [LibraryImport("libc")] public static partial uint getuid();
    [LibraryImport("libc")] public static partial uint geteuid();
    [LibraryImport("libc")] public static partial uint getgid();
    [LibraryImport("libc")] public static partial uint getegid();
    [LibraryImport("libc", SetLastError = true)] public static partial int getgroups(int size, uint* list);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int link(string from, string to);

    [LibraryImport("libc", SetLastError = true)] public static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mkdir(string path, uint mode);

    [StructLayout(LayoutKind.Sequential)]
    private struct Passwd
    {
        public byte* Name, Password;
        public uint Uid, Gid;
        public byte* Gecos, Home, Shell;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getpwuid_r(uint uid, Passwd* result, byte* buffer, nuint length, Passwd** found);

    [LibraryImport("libc")]
    private static partial int getgrouplist(byte* user, uint group, uint* groups, int* count);

    /// <summary>fstat(2) of a descriptor; throws naming what it is.</summary>
    public static Native.Stat Fstat(int fd, string what)
    {
        Native.Stat stat;
        if (Native.syscall3(SYS_fstat, fd, (long)&stat, 0) != 0)
            throw new SyscallException("fstat", Native.LastErrno, Environment.ProcessId, what);
        return stat;
    }

    /// <summary>The engine's supplementary groups.</summary>
    public static uint[] Groups()
    {
        int count = getgroups(0, null);
        var groups = new uint[Math.Max(count, 0)];
        fixed (uint* list = groups) count = getgroups(groups.Length, list);
        return count < 0 ? [] : groups[..count];
    }

    /// <summary>
    /// A user from the user database (NSS): name, primary gid and every group the user is a member
    /// of (getgrouplist: what login gives them); null when the uid has no entry.
    /// </summary>
    public static (string Name, uint Gid, uint[] Groups)? User(uint uid)
    {
        byte[] buffer = new byte[16 << 10];
        Passwd entry;
        Passwd* found;
        fixed (byte* text = buffer)
        {
            if (getpwuid_r(uid, &entry, text, (nuint)buffer.Length, &found) != 0 || found == null) return null;
            string name = Marshal.PtrToStringUTF8((nint)entry.Name) ?? "";
            int count = 64;
            while (true)
            {
                var groups = new uint[count];
                int wanted = count;
                fixed (uint* list = groups)
                {
                    if (getgrouplist(entry.Name, entry.Gid, list, &wanted) >= 0) return (name, entry.Gid, groups[..wanted]);
                }
                if (wanted <= count || count > 65536) return (name, entry.Gid, [entry.Gid]);
                count = wanted;
            }
        }
    }
}
