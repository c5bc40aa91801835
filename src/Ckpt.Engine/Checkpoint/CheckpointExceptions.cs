namespace Ckpt.Engine.Checkpoint;

/// <summary>The target is in a state this engine does not checkpoint (threads, children, seccomp, an fd kind).</summary>
public sealed class CheckpointRefusedException(string message) : Exception(message);

/// <summary>No process has the requested pid.</summary>
public sealed class TargetNotFoundException(int pid) : Exception($"no process with pid {pid}")
{
    public int Pid { get; } = pid;
}

/// <summary>The pid asked for can never name a process (0 or below): refused before anything is opened.</summary>
public sealed class InvalidPidException(int pid) : Exception($"--pid {pid} is not a process id: a pid is a number from 1 up")
{
    public int Pid { get; } = pid;
}

/// <summary>
/// The output path is refused before the target is touched: an image exists there (and replacing it
/// was not asked for, or it appeared while the checkpoint ran), or the path is a symbolic link or
/// something other than a regular file, FIFO or character device.
/// </summary>
public sealed class ImageOutputRefusedException(string message, bool exists) : Exception(message)
{
    /// <summary>An image (or other file) is already there: the destination was left as it was.</summary>
    public bool Exists { get; } = exists;
}

/// <summary>A file operation on the output failed: names the operation, the path and the errno.</summary>
public sealed class ImageOutputException(string operation, string path, int errno)
    : IOException($"cannot {operation} '{path}': {Linux.Errno.Name(errno)} ({errno}) {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)}")
{
    public int Errno { get; } = errno;
}
