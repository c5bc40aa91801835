using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Everything a restore needs, read and checked before any process exists. Page contents stay
/// in the image file: only their offsets are kept (<see cref="PageChunk"/>).
/// </summary>
public sealed class RestorePlan : IDisposable
{
    public required HeaderRecord Header { get; init; }
    public required HeaderArchRecord HeaderArch { get; init; }
    public required TaskRecord Task { get; init; }
    public required string Cwd { get; init; }
    public required string Root { get; init; }
    public required string ExePath { get; init; }
    public required CredentialsRecord Credentials { get; init; }
    public required uint[] Groups { get; init; }
    public required MmRecord Mm { get; init; }
    public required IReadOnlyList<VmaPlan> Vmas { get; init; }
    public required IReadOnlyDictionary<int, FilePlan> Files { get; init; }
    public required IReadOnlyList<FileDescriptorRecord> Descriptors { get; init; }
    public required IReadOnlyList<SignalActionRecord> SignalActions { get; init; }
    public required SignalRecord Signal { get; init; }
    public required IReadOnlyList<SignalPendingRecord> PendingSignals { get; init; }
    public required IReadOnlyList<ThreadPlan> Threads { get; init; }

    /// <summary>The image file, open for reading page contents at their offsets.</summary>
    public required SafeFileHandle ImageFile { get; init; }

    public int Pid => Task.Pid;

    public void Dispose() => ImageFile.Dispose();
}

/// <summary>An open file object of the image (FileRecord) with its path.</summary>
public sealed record FilePlan(FileRecord Record, string Path);

/// <summary>One VMA, its backing file if any, and where its saved pages are in the image.</summary>
public sealed record VmaPlan(VmaRecord Record, FilePlan? File, IReadOnlyList<PageChunk> Chunks)
{
    public ulong Length => Record.VmEnd - Record.VmStart;
}

/// <summary>A PAGE_ARRAY chunk: the page addresses, and the image offset of their contents.</summary>
public sealed record PageChunk(ulong[] Addresses, long ContentsOffset);

/// <summary>One thread: how it stopped, its signal stack, rseq area and CPU state.</summary>
public sealed record ThreadPlan(
    ThreadRecord Thread,
    RestartBlockRecord? RestartBlock,
    SignalStackRecord SignalStack,
    RseqRecord Rseq,
    CpuRecord Cpu,
    CpuXstateRecord XstateRecord,
    byte[] Xstate);
