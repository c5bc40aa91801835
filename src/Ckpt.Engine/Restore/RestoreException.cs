namespace Ckpt.Engine.Restore;

/// <summary>Why a restore failed, and at which step (the task it created is already killed).</summary>
public sealed class RestoreException(string step, string message, Exception? inner = null)
    : Exception($"restore failed at step '{step}': {message}", inner)
{
    public string Step { get; } = step;
}

/// <summary>The image cannot be restored here; nothing was created.</summary>
public sealed class RestoreRefusedException(string message) : Exception(message);
