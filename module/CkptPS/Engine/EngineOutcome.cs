using System.Management.Automation;

namespace CkptPS.Engine;

/// <summary>How a run of the engine ended: its exit code and the channel's result line.</summary>
internal sealed class EngineOutcome(int exitCode, EngineEvent? result, string standardOutput, string standardError)
{
    public int ExitCode { get; } = exitCode;
    public EngineEvent? Result { get; } = result;
    public string StandardOutput { get; } = standardOutput;
    public string StandardError { get; } = standardError;

    /// <summary>
    /// The result line decides when there is one: with `restore --wait` the engine exits with
    /// the restored process's status, which says nothing about the restore.
    /// </summary>
    public bool Succeeded => Result is { } result ? result.Ok : ExitCode == 0;

    /// <summary>The channel's category when it sent one, else the documented exit code's meaning.</summary>
    public ErrorCategory Category
    {
        get
        {
            if (Result is { Ok: false, Category: { } name } && Enum.TryParse(name, out ErrorCategory parsed))
                return parsed;
            return ExitCode switch
            {
                2 => ErrorCategory.InvalidArgument,
                3 => ErrorCategory.ObjectNotFound,
                4 => ErrorCategory.PermissionDenied,
                5 => ErrorCategory.InvalidData,
                6 => ErrorCategory.InvalidOperation,
                _ => ErrorCategory.NotSpecified,
            };
        }
    }

    public string Message
    {
        get
        {
            if (!string.IsNullOrWhiteSpace(Result?.Message)) return Result!.Message!;
            var line = StandardError.Split('\n').LastOrDefault(l => l.StartsWith("ckpt: ", StringComparison.Ordinal));
            if (line is not null) return line["ckpt: ".Length..].Trim();
            if (!string.IsNullOrWhiteSpace(StandardError)) return StandardError.Trim();
            return ExitCode > 128
                ? $"the engine was killed by signal {ExitCode - 128}"
                : $"the engine exited with code {ExitCode} without saying why";
        }
    }

    public ErrorRecord ToErrorRecord(string errorId, string what, object target)
    {
        string errno = Result?.Errno is int number and not 0 ? $" (errno {number})" : "";
        var exception = new CkptEngineException($"{what}: {Message}{errno}", ExitCode, Result?.Errno);
        return new ErrorRecord(exception, errorId, Category, target);
    }
}

/// <summary>A failure the engine reported, with its exit code and errno when it had one.</summary>
public sealed class CkptEngineException(string message, int exitCode, int? errno) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    public int? Errno { get; } = errno;
}
