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
/// Pipes whose ends are all in the checkpointed process or tree (self-pipes of event loops, a shell
/// pipeline, a parent writing to a child). Each end is a file object (its own open file description:
/// access mode, O_NONBLOCK, O_DIRECT); the pipe is one object of the object table (ObjectType.Pipe,
/// keyed by its pipefs inode) that every end refers to, whatever process holds it, written with the
/// first end as a PIPE_BUF record: the pipe's size and the bytes buffered in it.
/// The bytes are copied without being consumed: the engine opens the pipe through /proc/PID/fd/N
/// (another reader of the same pipe) and tee(2)s its buffers into a pipe of its own, so the running
/// target keeps them. Refused by name: a pipe with an end held by no process being checkpointed (a
/// shell pipeline's stdin from an outside shell; an end in flight in a unix socket's queue inspected before it counts,
/// Sockets/InFlightFiles), an end opened read-write, O_ASYNC, data in a
/// packet-mode (O_DIRECT) pipe (the packet boundaries are not saved), a pipe above 1 MiB.
/// Restore: the first end of a pipe placed in the tree creates it (injected pipe2, F_SETPIPE_SZ, the
/// bytes written back, the unneeded end closed); every other end is opened through /proc/PID/fd of
/// that end (FilesRestore keeps where it is), as a FIFO is opened; an end shared by processes (the
/// same open file description) is fetched with pidfd_getfd like any file object. Each end then gets
/// its recorded O_NONBLOCK and O_DIRECT.
/// </summary>
public sealed partial class PipeKind : IDescriptorKind
{
    private const uint O_ACCMODE = 3, O_WRONLY = 1, O_NONBLOCK = 0x800, O_ASYNC = 0x2000, O_DIRECT = 0x4000, O_CLOEXEC = 0x80000;
    private const int F_SETFL = 4, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032, FIONREAD = 0x541B, SPLICE_F_NONBLOCK = 2;
    private const long SYS_read = 0, SYS_ioctl = 16, SYS_pipe2 = 293;
    private const ulong AT_FDCWD = unchecked((ulong)-100);
    private const int WriteChunk = 32 * 1024;

    public bool Matches(DescriptorInfo fd) => fd.StatKind == FileKind.Pipe && fd.Target.StartsWith("pipe:[", StringComparison.Ordinal);

    internal const int F_SETPIPE_SIZE = F_SETPIPE_SZ;

    // ---- checkpoint ----

    public bool SavedInFlight => true;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        string what = $"fd {fd.Fd} of process {fd.Pid} ({fd.Target})";
        uint access = fd.FdInfo.Flags & O_ACCMODE;
        if (access > O_WRONLY)
            throw new CheckpointRefusedException($"{what} is a pipe opened for reading and writing: unsupported");
        if ((fd.FdInfo.Flags & O_ASYNC) != 0)
            throw new CheckpointRefusedException($"{what} is a pipe with O_ASYNC (signal-driven I/O): unsupported");
        List<(int Fd, uint Flags)> ends = (fd.TreePids ?? [fd.Pid]).SelectMany(pid => EndsIn(pid, fd.Target)).ToList();
        ends.AddRange(fd.InFlight?.EngineEndsOf(fd.Target) ?? []); // ends in flight in a queue inspected before this one (Sockets/InFlightFiles)
        // Before the freeze nothing in flight is known: the frozen pass decides when any is.
        bool endMayBeInFlight = fd.DryRun && Sockets.InFlightFiles.AnyInTree(fd.TreePids ?? [fd.Pid]);
        if (!ends.Any(e => (e.Flags & O_ACCMODE) != access) && !endMayBeInFlight)
            throw new CheckpointRefusedException($"{what} is the {(access == 0 ? "read" : "write")} end of a pipe whose {(access == 0 ? "write" : "read")} end is held by no process being checkpointed (a pipe to a process outside {(fd.TreePids is null ? "it" : "the tree")}): unsupported");
        var (size, data) = CopyBufferedBytes(fd);
        if (data.Length > 0 && ends.Any(e => (e.Flags & (O_ACCMODE | O_DIRECT)) == (O_WRONLY | O_DIRECT)))
            throw new CheckpointRefusedException($"{what} is a pipe in packet mode (O_DIRECT) holding {data.Length} bytes: packet boundaries are not saved, unsupported");
        ObjectTable objects = fd.Objects ?? throw new InvalidOperationException("a pipe end needs the checkpoint's object table");
        int pipeRef = objects.RefOf(ObjectType.Pipe, (long)fd.Stat.Inode);
        var pipe = new PipeBufferRecord { PipeObjRef = pipeRef, PipeSize = size, DataLength = (uint)data.Length };
        return new InspectedEnd(OpenFileRecords.Record(objRef, FileKind.Pipe, fd.Stat, fd.Target, fd.FdInfo.Flags, 0), fd.Target, ObjectType.Pipe, pipe, data, objects);
    }

    private static List<(int Fd, uint Flags)> EndsIn(int pid, string target)
    {
        var ends = new List<(int, uint)>();
        try
        {
            foreach (string entry in Directory.GetFileSystemEntries($"/proc/{pid}/fd"))
            {
                if (new FileInfo(entry).LinkTarget != target) continue;
                int fd = int.Parse(Path.GetFileName(entry));
                ends.Add((fd, ProcFdInfo.Read(pid, fd).Flags));
            }
        }
        // Only before the freeze (the audit's dry run) can a process of the tree exit meanwhile: it holds no end.
        catch (IOException) when (ProcStat.IsZombie(pid) != false) { }
        return ends;
    }

    /// <summary>The pipe's size and the bytes in it, left where they are (tee, not read).</summary>
    internal static unsafe (uint Size, byte[] Data) CopyBufferedBytes(DescriptorInfo fd)
    {
        string path = $"/proc/{fd.Pid}/fd/{fd.Fd}";
        int source = Native.open(path, (int)(O_NONBLOCK | O_CLOEXEC), 0); // O_RDONLY: one more reader, as long as we hold it
        if (source < 0) throw new SyscallException("open", Native.LastErrno, fd.Pid, path);
        try
        {
            int size = fcntl(source, F_GETPIPE_SZ, 0);
            if (size < 0) throw new SyscallException("fcntl(F_GETPIPE_SZ)", Native.LastErrno, fd.Pid, path);
            if (size > PipeBufferRecord.MaximumSize)
                throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is a pipe of {size} bytes: at most {PipeBufferRecord.MaximumSize} are supported");
            // The dry run before the freeze checks only: the pipe's bytes move while its ends run.
            if (fd.DryRun) return ((uint)size, []);
            int buffered;
            if (Native.ioctl(source, FIONREAD, &buffered) != 0) throw new SyscallException("ioctl(FIONREAD)", Native.LastErrno, fd.Pid, path);
            return ((uint)size, buffered == 0 ? [] : Tee(source, size, buffered, fd.Pid, path));
        }
        finally
        {
            Native.close(source);
        }
    }

    private static unsafe byte[] Tee(int source, int size, int buffered, int pid, string path)
    {
        int* copy = stackalloc int[2];
        if (pipe2(copy, (int)(O_NONBLOCK | O_CLOEXEC)) != 0) throw new SyscallException("pipe2", Native.LastErrno, Environment.ProcessId, "a pipe to copy the target's into");
        try
        {
            if (fcntl(copy[1], F_SETPIPE_SZ, size) < size) throw new SyscallException("fcntl(F_SETPIPE_SZ)", Native.LastErrno, Environment.ProcessId, $"a pipe of {size} bytes to copy {path} into");
            nint teed = tee(source, copy[1], (nuint)buffered, SPLICE_F_NONBLOCK);
            if (teed < 0) throw new SyscallException("tee", Native.LastErrno, pid, path);
            if (teed != buffered) throw new IOException($"{path}: tee copied {teed} of the {buffered} bytes in the pipe");
            var data = new byte[buffered];
            fixed (byte* bytes = data)
                for (int done = 0; done < buffered;)
                {
                    nint got = read(copy[0], bytes + done, (nuint)(buffered - done));
                    if (got <= 0) throw new SyscallException("read", got < 0 ? Native.LastErrno : 0, Environment.ProcessId, $"the copy of {path}");
                    done += (int)got;
                }
            return data;
        }
        finally
        {
            Native.close(copy[0]);
            Native.close(copy[1]);
        }
    }

    /// <summary>
    /// One end of a pipe or FIFO: its FILE record, then the buffer object (PIPE_BUF with the bytes in
    /// flight) on its first use, an OBJREF to it on later ones (<paramref name="BufferType"/>: Pipe or Fifo).
    /// </summary>
    internal sealed record InspectedEnd(FileRecord File, string Path, ObjectType BufferType, PipeBufferRecord Buffer, byte[] Data, ObjectTable Objects) : IInspectedFile
    {
        public void Write(ImageWriter writer)
        {
            writer.Write(File, Encoding.UTF8.GetBytes(Path));
            PipeBufferRecord buffer = Buffer;
            byte[] data = Data;
            Objects.WriteUse(writer, BufferType, Buffer.PipeObjRef, () => writer.Write(buffer, data));
        }
    }

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Pipe;

    public void Validate(FileImage file, int fd)
    {
        if (file.Pipe is null)
            throw new RestoreRefusedException($"fd {fd} is a pipe end without its pipe (PIPE_BUF record)");
    }

    /// <summary>The first end of a pipe placed in the tree: a new pipe, sized and refilled.</summary>
    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        PipeImage pipe = file.Pipe!;
        bool reads = (file.Record.OpenFlags & O_ACCMODE) == 0;
        ulong pair = scratch.Reserve(2 * sizeof(int));
        syscalls.Call($"pipe2 for fd {fd} ({file.Path})", SYS_pipe2, pair, 0);
        byte[] fds = ProcessMemory.ReadExact(syscalls.Pid, pair, 2 * sizeof(int));
        ulong readEnd = BitConverter.ToUInt32(fds, 0), writeEnd = BitConverter.ToUInt32(fds, 4);
        long resized = syscalls.Call($"fcntl(F_SETPIPE_SZ, {pipe.Record.PipeSize}) for fd {fd}", SYS_fcntl, readEnd, F_SETPIPE_SZ, pipe.Record.PipeSize);
        if (resized != pipe.Record.PipeSize) throw new IOException($"pipe of fd {fd}: asked for {pipe.Record.PipeSize} bytes, the kernel made {resized}");
        Refill(syscalls, scratch, writeEnd, pipe.Data, fd);
        syscalls.Call($"close of the unused end of the new pipe for fd {fd}", SYS_close, reads ? writeEnd : readEnd);
        return (long)(reads ? readEnd : writeEnd);
    }

    /// <summary>
    /// Another end (its own open file description) of a pipe an earlier end of which is placed, in
    /// this process or another of the tree: opened through /proc/PID/fd of that end, as a FIFO is
    /// opened. The placed end keeps the pipe alive, so the open never waits for the other side
    /// (O_NONBLOCK here; the recorded flags are set once placed).
    /// </summary>
    public static long OpenOtherEnd(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, (int Pid, int Fd) placed)
    {
        string path = $"/proc/{placed.Pid}/fd/{placed.Fd}";
        return syscalls.Call($"open of {path} for fd {fd} (another end of {file.Path})", SYS_openat, AT_FDCWD,
            scratch.PutString(path), (file.Record.OpenFlags & O_ACCMODE) | O_NONBLOCK, 0);
    }

    internal static void Refill(SyscallInjector syscalls, ScratchArea scratch, ulong writeEnd, byte[] data, int fd)
    {
        for (int done = 0; done < data.Length;)
        {
            scratch.Reset();
            int length = Math.Min(WriteChunk, data.Length - done);
            long written = syscalls.Call($"write of {length} buffered bytes into the pipe of fd {fd}", SYS_write, writeEnd, scratch.Put(data.AsSpan(done, length)), (ulong)length);
            if (written <= 0) throw new IOException($"pipe of fd {fd}: a write of its buffered bytes wrote {written}");
            done += (int)written;
        }
    }

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        ulong flags = file.Record.OpenFlags & (O_NONBLOCK | O_DIRECT);
        syscalls.Call($"fcntl(F_SETFL, 0x{flags:x}) of pipe fd {fd}", SYS_fcntl, (ulong)fd, F_SETFL, flags);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint tee(int input, int output, nuint length, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nuint count);
}
