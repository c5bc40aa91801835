namespace Ckpt.Image;

/// <summary>
/// The image is well formed but records a checkpoint that failed: an ERROR record stands where
/// the rest of the image would be. Carries the checkpoint's own reason and errno.
/// </summary>
public sealed class FailedCheckpointException(string reason, int errno, long offset)
    : Exception($"the image records a failed checkpoint (ERROR record at offset {offset}): {reason}" + (errno != 0 ? $" (errno {errno})" : ""))
{
    public string Reason { get; } = reason;

    /// <summary>The errno of the failed system call, 0 when the failure was not a syscall.</summary>
    public int Errno { get; } = errno;

    /// <summary>Offset of the ERROR record in the image.</summary>
    public long Offset { get; } = offset;
}
