using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files;

/// <summary>
/// epoll: the instance and its whole interest list, from the "tfd: N events: X data: Y" lines of
/// /proc/PID/fdinfo/N (the events mask carries EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE and EPOLLWAKEUP).
/// The kernel keys an interest by (file, fd number) and keeps it when that fd is closed or reused, so
/// each one is checked with kcmp(KCMP_EPOLL_TFD) to be the file now at its fd; one that is not (the
/// fd was closed, or now holds another file) is refused, naming both fds. Restore creates the
/// instance (epoll_create1) with the other descriptors, and once every descriptor is in place adds
/// each watched fd (epoll_ctl ADD with the recorded events and data), the epolls it watches first;
/// it then reads the new instance's fdinfo back and refuses a list the kernel did not take exactly
/// (EPOLLWAKEUP is dropped silently without CAP_BLOCK_SUSPEND). Readiness is the kernel's to
/// recompute: an edge-triggered descriptor that is ready at restore reports one edge again.
/// </summary>
public sealed class EpollKind : IDescriptorKind
{
    private const string Target = "anon_inode:[eventpoll]";
    private const int KCMP_EPOLL_TFD = 7;
    private const long SYS_epoll_ctl = 233, SYS_epoll_create1 = 291;
    private const ulong EPOLL_CTL_ADD = 1;

    public bool Matches(DescriptorInfo fd) => fd.Target == Target;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        List<EpollItem> items = ReadInterestList(fd.Pid, fd.Fd);
        foreach (EpollItem item in items)
            RequireSameFileAtFd(fd, item.Fd, items.Count(i => i.Fd == item.Fd));
        if (items.Count > EpollRecord.MaxItems)
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is an epoll watching {items.Count} descriptors: at most {EpollRecord.MaxItems} are supported");
        FileRecord file = OpenFileRecords.Record(objRef, FileKind.Epoll, fd.Stat, Target, fd.FdInfo.Flags, 0);
        return new Inspected(file, new EpollRecord { ObjRef = objRef, ItemCount = items.Count, ItemsLength = (uint)(items.Count * EpollItem.Size) }, items);
    }

    /// <summary>The "tfd:" lines of an epoll's fdinfo (fdinfo of the target at checkpoint, of the new task at restore).</summary>
    private static List<EpollItem> ReadInterestList(int pid, int fd)
    {
        var items = new List<EpollItem>();
        foreach (string line in File.ReadAllLines($"/proc/{pid}/fdinfo/{fd}"))
        {
            if (!line.StartsWith("tfd:", StringComparison.Ordinal)) continue;
            string[] words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < 6 || words[2] != "events:" || words[4] != "data:"
                || !int.TryParse(words[1], CultureInfo.InvariantCulture, out int target)
                || !uint.TryParse(words[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint events)
                || !ulong.TryParse(words[5], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong data))
                throw new FormatException($"/proc/{pid}/fdinfo/{fd}: cannot read the epoll line '{line}'");
            items.Add(new EpollItem { Fd = target, Events = events, Data = data });
        }
        return items;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct KcmpEpollSlot
    {
        public uint EpollFd, TargetFd, TargetOffset;
    }

    private static unsafe void RequireSameFileAtFd(DescriptorInfo epoll, int target, int sameNumber)
    {
        string what = $"fd {epoll.Fd} of process {epoll.Pid} is an epoll watching fd {target}";
        if (sameNumber > 1)
            throw new CheckpointRefusedException($"{what} {sameNumber} times (files once at that fd number, since closed): unsupported");
        var slot = new KcmpEpollSlot { EpollFd = (uint)epoll.Fd, TargetFd = (uint)target };
        int order = Native.kcmp(epoll.Pid, epoll.Pid, KCMP_EPOLL_TFD, target, (long)&slot);
        if (order == 0) return;
        if (order < 0 && Native.LastErrno == 9) // EBADF: nothing is open at that fd any more
            throw new CheckpointRefusedException($"{what}, which the process has closed since (the watch stays on the file): unsupported");
        if (order < 0)
            throw new SyscallException("kcmp(KCMP_EPOLL_TFD)", Native.LastErrno, epoll.Pid, $"epoll fd {epoll.Fd}, watched fd {target}");
        throw new CheckpointRefusedException($"{what}, which holds another file now (the watched file's fd was closed and reused): unsupported");
    }

    private sealed record Inspected(FileRecord File, EpollRecord Epoll, List<EpollItem> Items) : IInspectedFile
    {
        public void Write(ImageWriter writer)
        {
            writer.Write(File, Encoding.UTF8.GetBytes(Target));
            var bytes = new byte[Items.Count * EpollItem.Size];
            for (int i = 0; i < Items.Count; i++)
            {
                Span<byte> entry = bytes.AsSpan(i * EpollItem.Size, EpollItem.Size);
                BinaryPrimitives.WriteInt32LittleEndian(entry, Items[i].Fd);
                BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], Items[i].Events);
                BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], Items[i].Data);
            }
            writer.Write(Epoll, bytes);
        }
    }

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Epoll;

    public void Validate(FileImage file, int fd)
    {
        if (file.Epoll is null)
            throw new RestoreRefusedException($"fd {fd} is an epoll without its EPOLL record");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        syscalls.Call($"epoll_create1 for fd {fd}", SYS_epoll_create1, 0);

    public IEnumerable<int> FinishAfter(FileImage file) => file.Epoll!.Items.Select(i => i.Fd);

    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    private struct EpollEvent // the kernel's packed struct epoll_event on x86-64
    {
        public uint Events;
        public ulong Data;
    }

    public void Finish(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        foreach (EpollItem item in file.Epoll!.Items)
        {
            scratch.Reset();
            ulong evt = scratch.PutStruct(new EpollEvent { Events = item.Events, Data = item.Data });
            syscalls.Call($"epoll_ctl(ADD fd {item.Fd}, events 0x{item.Events:x}) on epoll fd {fd}", SYS_epoll_ctl, (ulong)fd, EPOLL_CTL_ADD, (ulong)item.Fd, evt);
        }
        var restored = ReadInterestList(syscalls.Pid, fd).ToDictionary(i => i.Fd);
        foreach (EpollItem item in file.Epoll.Items)
        {
            if (!restored.TryGetValue(item.Fd, out EpollItem got) || got.Events != item.Events || got.Data != item.Data)
                throw new RestoreRefusedException($"epoll fd {fd}: the kernel took the watch of fd {item.Fd} as events 0x{got.Events:x} data 0x{got.Data:x}, "
                    + $"the image has events 0x{item.Events:x} data 0x{item.Data:x}{((item.Events & EpollItem.EPOLLWAKEUP) != 0 ? " (EPOLLWAKEUP needs CAP_BLOCK_SUSPEND)" : "")}");
        }
    }
}
