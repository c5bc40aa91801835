using static Ckpt.Engine.Linux.Native;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Another process's memory, for both checkpoint and restore. API: ReadExact/Write for small
/// pieces (through /proc/PID/mem, which a ptracer may use on any mapping, read-only, PROT_NONE
/// and not yet populated ones included); ReadRanges for bulk
/// page reads: one process_vm_readv with many iovecs into the caller's buffer, and /proc/PID/mem
/// for whatever process_vm_readv refuses (it honours page protections).
/// </summary>
public static unsafe class ProcessMemory
{
    private const int MaxIovecs = 1024; // IOV_MAX

    public static byte[] ReadExact(int pid, ulong address, int length)
    {
        byte[] buffer = new byte[length];
        int fd = OpenMem(pid, O_RDONLY);
        try
        {
            fixed (byte* bytes = buffer) PreadExact(fd, pid, bytes, length, address);
        }
        finally
        {
            close(fd);
        }
        return buffer;
    }

    /// <summary>
    /// A read of readable memory (the results a batch stored in the scratch area): one process_vm_readv,
    /// without the open and close of /proc/PID/mem that <see cref="ReadExact"/> pays (a tree's restore makes
    /// a thousand such reads); through /proc/PID/mem when the kernel refuses it.
    /// </summary>
    public static byte[] ReadReadable(int pid, ulong address, int length)
    {
        byte[] buffer = new byte[length];
        fixed (byte* bytes = buffer)
        {
            var local = new Iovec { Base = (nint)bytes, Length = (nuint)length };
            var remote = new Iovec { Base = (nint)address, Length = (nuint)length };
            if (process_vm_readv(pid, &local, 1, &remote, 1, 0) == length) return buffer;
        }
        return ReadExact(pid, address, length);
    }

    public static void Write(int pid, ulong address, ReadOnlySpan<byte> data)
    {
        int fd = OpenMem(pid, O_RDWR);
        try
        {
            Write(fd, pid, address, data);
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>
    /// A write to writable memory (the restore's scratch area): one process_vm_writev, without the
    /// open and close of /proc/PID/mem that <see cref="Write(int, ulong, ReadOnlySpan{byte})"/> pays
    /// (a restore makes a hundred such writes); through /proc/PID/mem when the kernel refuses it.
    /// </summary>
    public static void WriteWritable(int pid, ulong address, ReadOnlySpan<byte> data)
    {
        fixed (byte* bytes = data)
        {
            var local = new Iovec { Base = (nint)bytes, Length = (nuint)data.Length };
            var remote = new Iovec { Base = (nint)address, Length = (nuint)data.Length };
            if (process_vm_writev(pid, &local, 1, &remote, 1, 0) == data.Length) return;
        }
        Write(pid, address, data);
    }

    /// <summary>Writes through an open /proc/PID/mem (<see cref="OpenMem"/> with O_RDWR), for many writes.</summary>
    public static void Write(int memFd, int pid, ulong address, ReadOnlySpan<byte> data)
    {
        fixed (byte* bytes = data)
        {
            for (int done = 0; done < data.Length;)
            {
                nint n = pwrite(memFd, bytes + done, (nuint)(data.Length - done), (long)address + done);
                if (n <= 0) throw new SyscallException("pwrite(/proc/PID/mem)", n < 0 ? LastErrno : Errno.EIO, pid, $"{data.Length} bytes at 0x{address:x}");
                done += (int)n;
            }
        }
    }

    /// <summary>
    /// Reads the given ranges back to back into <paramref name="destination"/> (which must hold
    /// their total length). <paramref name="memFd"/> is an open /proc/PID/mem for the fallback.
    /// </summary>
    public static void ReadRanges(int pid, int memFd, ReadOnlySpan<(ulong Address, int Length)> ranges, Span<byte> destination)
    {
        fixed (byte* buffer = destination)
        {
            int offset = 0;
            for (int first = 0; first < ranges.Length; first += MaxIovecs)
            {
                var batch = ranges.Slice(first, Math.Min(MaxIovecs, ranges.Length - first));
                offset += ReadBatch(pid, memFd, batch, buffer + offset);
            }
        }
    }

    private static int ReadBatch(int pid, int memFd, ReadOnlySpan<(ulong Address, int Length)> ranges, byte* buffer)
    {
        Span<Iovec> remote = stackalloc Iovec[ranges.Length]; // at most IOV_MAX: 16 KiB
        int total = 0;
        for (int i = 0; i < ranges.Length; i++)
        {
            remote[i] = new Iovec { Base = (nint)ranges[i].Address, Length = (nuint)ranges[i].Length };
            total += ranges[i].Length;
        }
        var local = new Iovec { Base = (nint)buffer, Length = (nuint)total };
        nint read;
        fixed (Iovec* remoteIovecs = remote) read = process_vm_readv(pid, &local, 1, remoteIovecs, (nuint)remote.Length, 0);
        if (read < 0) read = 0; // nothing readable this way (e.g. the first range is PROT_NONE)
        // process_vm_readv stops at the first range it cannot read: the rest goes through /proc/PID/mem.
        int position = 0;
        foreach (var (address, length) in ranges)
        {
            if (position + length > read)
            {
                int already = Math.Max(0, (int)read - position);
                PreadExact(memFd, pid, buffer + position + already, length - already, address + (ulong)already);
            }
            position += length;
        }
        return total;
    }

    public static int OpenMem(int pid, int flags)
    {
        int fd = open($"/proc/{pid}/mem", flags | O_CLOEXEC, 0);
        if (fd < 0) throw new SyscallException("open(/proc/PID/mem)", LastErrno, pid);
        return fd;
    }

    /// <summary>
    /// Reads through /proc/PID/mem only. Unlike process_vm_readv, which pins the pages it reads (FOLL_PIN)
    /// and so makes the kernel give the target its own copy of every page it shares copy-on-write with
    /// another process (a read-only pin unshares an anonymous page that is not exclusive), this leaves
    /// such pages shared.
    /// </summary>
    public static void ReadThroughMem(int memFd, int pid, ulong address, Span<byte> destination)
    {
        fixed (byte* buffer = destination) PreadExact(memFd, pid, buffer, destination.Length, address);
    }

    private static void PreadExact(int fd, int pid, byte* buffer, int length, ulong address)
    {
        for (int done = 0; done < length;)
        {
            nint n = pread(fd, buffer + done, (nuint)(length - done), (long)address + done);
            if (n <= 0) throw new SyscallException("pread(/proc/PID/mem)", n < 0 ? LastErrno : Errno.EIO, pid, $"{length} bytes at 0x{address:x}");
            done += (int)n;
        }
    }
}
