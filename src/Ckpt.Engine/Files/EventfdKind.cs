using System.Globalization;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// eventfd: the counter and the flags. Checkpoint reads /proc/PID/fdinfo/N ("eventfd-count" in hex,
/// "eventfd-semaphore" 0/1, O_NONBLOCK from "flags") without touching the counter, and writes the
/// FILE record (Kind = Eventfd) followed by an EVENTFD record. Restore creates the eventfd in the
/// task with an injected eventfd2(count, flags) (a count above 32 bits: eventfd2(0) and a write of
/// the count). An eventfd has no position and no path to check.
/// </summary>
public sealed class EventfdKind : IDescriptorKind
{
    private const string Target = "anon_inode:[eventfd]";
    private const uint O_NONBLOCK = 0x800;

    public bool Matches(DescriptorInfo fd) => fd.Target == Target;

    public bool SavedInFlight => true;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        IReadOnlyDictionary<string, string> fields = fd.FdInfo.Fields;
        string where = $"/proc/{fd.Pid}/fdinfo/{fd.Fd}";
        if (!fields.TryGetValue("eventfd-count", out string? countText)
            || !ulong.TryParse(countText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong count))
            throw new FormatException($"{where}: no eventfd-count line in hex");
        // Older kernels do not show the flag in fdinfo, and reading the counter to find out would change it.
        if (!fields.TryGetValue("eventfd-semaphore", out string? semaphore) || semaphore is not ("0" or "1"))
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} is an eventfd whose EFD_SEMAPHORE flag this kernel does not show ({where} has no eventfd-semaphore line): unsupported");
        var flags = (semaphore == "1" ? EventfdFlags.Semaphore : 0) | ((fd.FdInfo.Flags & O_NONBLOCK) != 0 ? EventfdFlags.NonBlock : 0);
        FileRecord file = OpenFileRecords.Record(objRef, FileKind.Eventfd, fd.Stat, Target, fd.FdInfo.Flags, 0);
        return new InspectedAnonymousFile<EventfdRecord>(file, Target, new EventfdRecord { ObjRef = objRef, Flags = flags, Count = count });
    }

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Eventfd;

    public void Validate(FileImage file, int fd)
    {
        // The image model checked the record (objref, flags, count); it is only missing from a model made by hand.
        if (file.Eventfd is null)
            throw new RestoreRefusedException($"fd {fd} is an eventfd without its EVENTFD record");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        EventfdRecord eventfd = file.Eventfd!.Value;
        ulong flags = (ulong)(eventfd.Flags & (EventfdFlags.Semaphore | EventfdFlags.NonBlock));
        if (eventfd.Count <= uint.MaxValue)
            return syscalls.Call($"eventfd2({eventfd.Count}, 0x{flags:x}) for fd {fd}", SYS_eventfd2, eventfd.Count, flags);
        long created = syscalls.Call($"eventfd2(0, 0x{flags:x}) for fd {fd}", SYS_eventfd2, 0, flags);
        long written = syscalls.Call($"write of count {eventfd.Count} to the eventfd of fd {fd}", SYS_write, (ulong)created, scratch.PutStruct(eventfd.Count), sizeof(ulong));
        if (written != sizeof(ulong))
            throw new IOException($"eventfd of fd {fd}: the write of its count wrote {written} bytes");
        return created;
    }
}
