namespace Ckpt.Engine.Restore;

/// <summary>Why a restore failed, and at which step (the task it created is already killed).</summary>
public sealed class RestoreException(string step, string message, Exception? inner = null)
    : Exception($"restore failed at step '{step}': {message}", inner)
{
    public string Step { get; } = step;
}

/// <summary>The image cannot be restored here; nothing was created.</summary>
public sealed class RestoreRefusedException(string message) : Exception(message);

/// <summary>
/// A failure inside one of the steps a stage does together (<see cref="SyscallBatch.Step"/>): the
/// stage reports it under that step's name, as if the step had been a stage of its own.
/// </summary>
/// <param name="thread">the thread, for a step each thread does</param>
public sealed class StepFailedException(string step, Exception inner, int? thread = null) : Exception(inner.Message, inner)
{
    public string Step { get; } = step;
    public int? Thread { get; } = thread;
}
