namespace Ckpt.Engine.Checkpoint;

/// <summary>The target is in a state this engine does not checkpoint (threads, children, seccomp, an fd kind).</summary>
public sealed class CheckpointRefusedException(string message) : Exception(message);

/// <summary>No process has the requested pid.</summary>
public sealed class TargetNotFoundException(int pid) : Exception($"no process with pid {pid}")
{
    public int Pid { get; } = pid;
}
