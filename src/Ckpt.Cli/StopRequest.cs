using System.Runtime.InteropServices;

namespace Ckpt.Cli;

/// <summary>
/// SIGINT, SIGTERM or SIGHUP (Ctrl+C in the shell; the module's StopProcessing sends SIGTERM)
/// while ckpt works. Dying at once could leave a checkpointed process resumed by the kernel in the
/// middle of an injected call, with the engine's registers. So the signal only asks: the operation
/// stops at its next progress report, which the engine makes between phases and page chunks, where
/// no register of the target is changed; a checkpoint then detaches and the process runs on as
/// before, a restore kills what it made. An engine that does not reach such a point within
/// <see cref="GraceSeconds"/> (a stream nobody drains) exits then: the kernel detaches a
/// checkpointed process (at that point only its pages are being read) and kills a half-restored one
/// (PTRACE_O_EXITKILL).
/// </summary>
internal sealed class StopRequest : IDisposable
{
    private const int GraceSeconds = 5;
    private readonly PosixSignalRegistration[] _registrations;
    private Timer? _deadline;
    private volatile string? _signal;

    private StopRequest()
    {
        _registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP }.Select(s => PosixSignalRegistration.Create(s, OnSignal))];
    }

    public static StopRequest Listen() => new();

    /// <summary>Call at a safe point: throws once a stop was asked for.</summary>
    public void ThrowIfRequested()
    {
        if (_signal is { } name) throw new OperationCanceledException($"stopped by {name}");
    }

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _deadline?.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // no immediate exit: see the summary
        if (_signal is not null) return;
        _signal = context.Signal.ToString();
        int status = 128 + context.Signal switch { PosixSignal.SIGINT => 2, PosixSignal.SIGHUP => 1, _ => 15 };
        _deadline = new Timer(_ =>
        {
            Console.Error.WriteLine($"ckpt: stopped by {_signal}: no safe point within {GraceSeconds} s, exiting");
            Environment.Exit(status);
        }, null, TimeSpan.FromSeconds(GraceSeconds), Timeout.InfiniteTimeSpan);
    }
}
