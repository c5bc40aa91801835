using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Everything a restore needs, read and checked before any process exists: the image model of
/// the one process being restored, and the open image file its page contents are read from.
/// </summary>
public sealed class RestorePlan : IDisposable
{
    public required ImageModel Image { get; init; }

    /// <summary>The image file, open for reading page contents at their offsets.</summary>
    public required SafeFileHandle ImageFile { get; init; }

    /// <summary>The checksum of everything before the tail, computed while the restore runs.</summary>
    public required Task<bool> ChecksumMatches { get; init; }

    /// <summary>Waits for the checksum; a mismatch is an <see cref="ImageFormatException"/> naming the tail.</summary>
    public void RequireChecksum()
    {
        StartChecksum();
        if (!ChecksumMatches.GetAwaiter().GetResult()) throw ChecksumMismatch();
    }

    /// <summary>Starts the hash if it was deferred (a lazy restore starts it once the process runs).</summary>
    public void StartChecksum()
    {
        lock (ChecksumMatches)
        {
            if (ChecksumMatches.Status == TaskStatus.Created) ChecksumMatches.Start();
        }
    }

    public ImageFormatException ChecksumMismatch() =>
        new(RecordType.Tail, Image.TailOffset, $"checksum mismatch: the image's contents do not hash to {Image.Tail.Checksum:x16} (corrupt image)");

    public ProcessImage Process => Image.Processes[0];

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
        try { if (ChecksumMatches.Status != TaskStatus.Created) ChecksumMatches.Wait(); }
        catch (AggregateException) { /* the restore reported its own failure */ }
        ImageFile.Dispose();
    }
}
