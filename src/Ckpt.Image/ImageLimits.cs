using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>Bounds the reader enforces before it trusts a length or a count from an image.</summary>
public static class ImageLimits
{
    /// <summary>Largest record: a full page chunk of 64 KiB pages with their addresses.</summary>
    public const uint MaxRecordLength = 8 + 8 + PageArrayRecord.MaxPagesPerChunk * (8u + MaxPageSize);

    public const uint MaxPageSize = 64 * 1024;

    /// <summary>Paths, messages and other strings.</summary>
    public const int MaxStringLength = 1 << 20;

    /// <summary>Buffers that are held in memory (xstate, group lists).</summary>
    public const int MaxBufferLength = 1 << 20;

    /// <summary>Tasks (threads of every process) in one image.</summary>
    public const int MaxTasks = 1 << 16;

    /// <summary>VMAs of one mm (the kernel's default vm.max_map_count is 65530).</summary>
    public const int MaxVmas = 1 << 20;

    /// <summary>Descriptors of one table.</summary>
    public const int MaxDescriptors = 1 << 20;

    /// <summary>Queued signals in one queue (RLIMIT_SIGPENDING bounds them in the kernel).</summary>
    public const int MaxPendingSignals = 1 << 20;

    /// <summary>POSIX timers of one process (RLIMIT_SIGPENDING bounds them in the kernel).</summary>
    public const int MaxPosixTimers = 1 << 20;
}
