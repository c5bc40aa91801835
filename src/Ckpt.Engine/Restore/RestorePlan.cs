using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Everything a restore needs, read and checked before any process exists: the image model of
/// the tree, and the open image file page contents are read from. The plan read from the image
/// is the root's; <see cref="ForProcess"/> gives the same plan seen from another process of the
/// tree (its memory, files, signals and threads), which every per-process step takes.
/// </summary>
public sealed class RestorePlan : IDisposable
{
    public required ImageModel Image { get; init; }

    /// <summary>The image file, open for reading page contents at their offsets.</summary>
    public required SafeFileHandle ImageFile { get; init; }

    /// <summary>Where the image came from, as a restore can tell who could have written it (docs/SECURITY.md).</summary>
    public required ImageSource Source { get; init; }

    /// <summary>The checksum of everything before the tail, computed while the restore runs.</summary>
    public required Task<bool> ChecksumMatches { get; init; }

    /// <summary>Waits for the checksum; a mismatch is an <see cref="ImageFormatException"/> naming the tail.</summary>
    public void RequireChecksum()
    {
        StartChecksum();
        if (!ChecksumMatches.GetAwaiter().GetResult()) throw ChecksumMismatch();
    }

    /// <summary>The process this plan describes (the root unless made by <see cref="ForProcess"/>).</summary>
    public ProcessImage Process => _process ?? Image.Processes[0];

    private ProcessImage? _process;
    private bool _isView;

    /// <summary>The same plan for another process of the tree; not to be disposed (the root's plan owns the file).</summary>
    public RestorePlan ForProcess(ProcessImage process) => new()
    {
        Image = Image, ImageFile = ImageFile, Source = Source, ChecksumMatches = ChecksumMatches, _process = process, _isView = true,
        ShellTerminal = ShellTerminal,
    };

    /// <summary>
    /// The terminal `ckpt restore` runs on (its standard input's, `--shell-terminal`), which takes the
    /// place of a terminal outside the image (the user's); null: such a terminal is refused.
    /// </summary>
    public string? ShellTerminal { get; set; }

    /// <summary>Every live process of the tree, the root first, every process after its parent.</summary>
    public IReadOnlyList<ProcessImage> Processes => Image.Processes;

    public IReadOnlyList<ZombieImage> Zombies => Image.Zombies;

    /// <summary>Starts the hash if it was deferred (a lazy restore starts it once the process runs).</summary>
    public void StartChecksum()
    {
        lock (ChecksumMatches)
        {
            if (ChecksumMatches.Status == TaskStatus.Created) ChecksumMatches.Start();
        }
    }

    public ImageFormatException ChecksumMismatch() => ChecksumMismatch(Image.TailOffset, Image.Tail.Checksum);

    /// <summary>The failure of the checksum of an image whose tail is at <paramref name="tailOffset"/>.</summary>
    public static ImageFormatException ChecksumMismatch(long tailOffset, ulong checksum) =>
        new(RecordType.Tail, tailOffset, $"checksum mismatch: the image's contents do not hash to {checksum:x16} (corrupt image)");

    public HeaderRecord Header => Image.Header;
    public HeaderArchRecord HeaderArch => Image.Arch;
    public TaskRecord Task => Process.Task;
    public string Cwd => Process.Cwd;
    public string Root => Process.Root;
    public string ExePath => Process.ExePath;
    public CredentialsRecord Credentials => Process.Credentials;
    public uint[] Groups => Process.Groups;
    public MmRecord Mm => Process.Memory.Mm;
    public IReadOnlyList<VmaImage> Vmas => Process.Memory.Vmas;
    public IReadOnlyDictionary<int, FileImage> Files => Process.FileTable.Files;
    public IReadOnlyList<FileDescriptorRecord> Descriptors => Process.FileTable.Descriptors;
    public IReadOnlyList<SignalActionRecord> SignalActions => Process.SignalHandlers.Actions;
    public SignalRecord Signal => Process.Signal.Record;
    public IReadOnlyList<SignalPendingRecord> SharedPendingSignals => Process.Signal.SharedPending;

    /// <summary>The threads, the leader first.</summary>
    public IReadOnlyList<ThreadImage> Threads => Process.Threads;

    public int Pid => Task.Pid;

    public void Dispose()
    {
        if (_isView) return;
        try { if (ChecksumMatches.Status != TaskStatus.Created) ChecksumMatches.Wait(); }
        catch (AggregateException) { /* the restore reported its own failure */ }
        ImageFile.Dispose();
    }
}

/// <summary>
/// Where an image came from: its name for messages, and for a regular file (an image file, or
/// standard input redirected from one) the owner and mode of the file as opened (fstat of the
/// very descriptor read, so a path swapped meanwhile changes nothing). Null owner: a pipe or a
/// socket, whose writer nobody can name.
/// </summary>
public sealed record ImageSource(string Name, uint? Owner, uint Mode)
{
    /// <summary>Bits of the mode that let group members or others write the file.</summary>
    public bool WritableByOthers => (Mode & 0x12) != 0;
}
