using System.Globalization;
using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// File locks held by the process, both sides. Checkpoint: the "lock:" lines of /proc/PID/fdinfo/N
/// list the locks taken through that open file (flock, POSIX record locks of the process, OFD locks;
/// a dup shows the same ones, so only a file object's first descriptor is read); a lease, or a lock on
/// anything but a regular file or directory, is refused by name. Restore, once every descriptor is in
/// place: each lock is taken again through a descriptor of its file object, never waiting (flock with
/// LOCK_NB, fcntl F_SETLK / F_OFD_SETLK), from the leader, so a POSIX lock belongs to the restored
/// process. A lock someone else holds now fails the restore, naming the file and the holder from
/// /proc/locks; the half-made process is then killed, which releases what it had taken.
/// </summary>
public static class FileLocks
{
    private const ulong LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, F_SETLK = 6, F_OFD_SETLK = 37;
    private const short F_RDLCK = 0, F_WRLCK = 1;

    /// <summary>struct flock (x86-64): type, whence, start, length, pid.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type, Whence;
        public long Start, Length;
        public int Pid;
    }

    // ---- checkpoint ----

    /// <summary>The locks held through this descriptor's open file.</summary>
    public static List<FileLockRecord> Inspect(DescriptorInfo fd, int objRef)
    {
        var locks = new List<FileLockRecord>();
        foreach (string line in fd.FdInfo.LockLines) // the fdinfo read for this descriptor's inspection
        {
            if (fd.StatKind is not (FileKind.Regular or FileKind.Directory))
                throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} ({fd.Target}) holds a file lock on a {fd.StatKind}: only locks on regular files and directories are restored");
            locks.Add(Parse(line, fd, objRef));
        }
        return locks;
    }

    // "lock:\t1: POSIX  ADVISORY  WRITE 1234 00:2a:5678 0 EOF" (id, kind, advisory, type, pid, dev:inode, start, end)
    private static FileLockRecord Parse(string line, DescriptorInfo fd, int objRef)
    {
        string[] fields = line["lock:".Length..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        string where = $"/proc/{fd.Pid}/fdinfo/{fd.Fd}";
        if (fields.Length < 8) throw new FormatException($"{where}: lock line '{line}' is not what this engine reads");
        FileLockKind kind = fields[1] switch
        {
            "FLOCK" => FileLockKind.Flock,
            "POSIX" => FileLockKind.Posix,
            "OFDLCK" => FileLockKind.Ofd,
            _ => throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} ({fd.Target}) holds a {fields[1]} {fields[2]} lock (a lease or delegation): unsupported"),
        };
        if (fields[2] != "ADVISORY" || fields[3] is not ("READ" or "WRITE"))
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} ({fd.Target}) holds a {fields[2]} {fields[3]} {fields[1]} lock: only advisory read and write locks are restored");
        long start = long.Parse(fields[6], CultureInfo.InvariantCulture);
        long length = fields[7] == "EOF" ? 0 : long.Parse(fields[7], CultureInfo.InvariantCulture) - start + 1;
        return new FileLockRecord { FileObjRef = objRef, Kind = kind, Exclusive = fields[3] == "WRITE" ? 1u : 0u, Start = start, Length = length };
    }

    // ---- restore ----

    /// <summary>Takes every recorded lock again, injected into the leader; refuses one held by someone else.</summary>
    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        foreach (FileLockRecord fileLock in plan.Process.FileTable.Locks)
        {
            scratch.Reset();
            int fd = plan.Descriptors.Where(d => d.FileObjRef == fileLock.FileObjRef).Min(d => d.Fd);
            FileImage file = plan.Files[fileLock.FileObjRef];
            string what = $"{Describe(fileLock)} on {file.Path} (fd {fd})";
            long result = fileLock.Kind == FileLockKind.Flock
                ? syscalls.CallRaw(SYS_flock, (ulong)fd, (fileLock.Exclusive != 0 ? LOCK_EX : LOCK_SH) | LOCK_NB)
                : syscalls.CallRaw(SYS_fcntl, (ulong)fd, fileLock.Kind == FileLockKind.Ofd ? F_OFD_SETLK : F_SETLK, scratch.PutStruct(new Flock
                {
                    Type = fileLock.Exclusive != 0 ? F_WRLCK : F_RDLCK, Start = fileLock.Start, Length = fileLock.Length,
                }));
            if (result == -Errno.EAGAIN || result == -Errno.EACCES)
                throw new RestoreRefusedException($"the {what} is held by {Holders(file, plan.Pid)} now: restore refused");
            if (result < 0)
                throw new SyscallException(fileLock.Kind == FileLockKind.Flock ? "flock" : "fcntl", (int)-result, syscalls.Pid, $"taking the {what}");
        }
    }

    private static string Describe(FileLockRecord fileLock)
    {
        string type = fileLock.Exclusive != 0 ? "write" : "read";
        return fileLock.Kind switch
        {
            FileLockKind.Flock => $"flock {type} lock",
            _ => $"{(fileLock.Kind == FileLockKind.Posix ? "POSIX" : "OFD")} {type} lock of bytes {fileLock.Start}..{(fileLock.Length == 0 ? "EOF" : (fileLock.Start + fileLock.Length - 1).ToString(CultureInfo.InvariantCulture))}",
        };
    }

    /// <summary>Who holds locks on the file now, from /proc/locks: "process 123 (comm)", or what is known.</summary>
    private static string Holders(FileImage file, int restoredPid)
    {
        ulong dev = file.Record.Device;
        ulong major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xffful), minor = (dev & 0xff) | ((dev >> 12) & ~0xfful);
        string identity = $"{major:x2}:{minor:x2}:{file.Record.Inode}";
        var holders = new List<string>();
        foreach (string line in File.ReadLines("/proc/locks"))
        {
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 8 || fields[1] == "->" || fields[5] != identity) continue;
            string holder = fields[4] == "-1" ? $"an open file description ({fields[1]} {fields[3]})"
                : int.Parse(fields[4], CultureInfo.InvariantCulture) is var pid && pid == restoredPid ? ""
                : $"process {pid} ({ProcessNames.CommOf(pid)}, {fields[1]} {fields[3]})";
            if (holder.Length > 0 && !holders.Contains(holder)) holders.Add(holder);
        }
        return holders.Count > 0 ? string.Join(", ", holders) : "another process";
    }
}
