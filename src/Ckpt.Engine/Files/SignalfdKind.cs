using System.Globalization;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files;

/// <summary>
/// signalfd: the signal mask ("sigmask" in /proc/PID/fdinfo/N, hex) and O_NONBLOCK (the file's flags).
/// Nothing is queued in a signalfd itself: it reads the pending signals of the thread that reads
/// and of the process, which the signal stage restores after the files, so a signal pending at
/// checkpoint is readable through the restored signalfd. Restore: an injected signalfd4(-1, mask).
/// </summary>
public sealed class SignalfdKind : IDescriptorKind
{
    private const string Target = "anon_inode:[signalfd]";
    private const uint O_NONBLOCK = 0x800;
    private const long SYS_signalfd4 = 289;

    public bool Matches(DescriptorInfo fd) => fd.Target == Target;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        if (!fd.FdInfo.Fields.TryGetValue("sigmask", out string? text)
            || !ulong.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong mask))
            throw new FormatException($"/proc/{fd.Pid}/fdinfo/{fd.Fd}: no sigmask line in hex");
        FileRecord file = OpenFileRecords.Record(objRef, FileKind.Signalfd, fd.Stat, Target, fd.FdInfo.Flags, 0);
        return new InspectedAnonymousFile<SignalfdRecord>(file, Target, new SignalfdRecord { ObjRef = objRef, Mask = mask });
    }

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Signalfd;

    public void Validate(FileImage file, int fd)
    {
        if (file.Signalfd is null)
            throw new RestoreRefusedException($"fd {fd} is a signalfd without its SIGNALFD record");
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        ulong mask = file.Signalfd!.Value.Mask;
        ulong flags = file.Record.OpenFlags & O_NONBLOCK;
        return syscalls.Call($"signalfd4(-1, mask 0x{mask:x}, 0x{flags:x}) for fd {fd}", SYS_signalfd4, ulong.MaxValue, scratch.PutStruct(mask), sizeof(ulong), flags);
    }
}
