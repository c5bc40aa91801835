namespace CkptPS;

/// <summary>One checkpointed task (a process), with what the image recorded about it.</summary>
public sealed class CkptTask
{
    public required string ImagePath { get; init; }
    public required int Pid { get; init; }
    public required int Tgid { get; init; }
    public required int Ppid { get; init; }
    public required int Pgid { get; init; }
    public required int Sid { get; init; }
    public required string Comm { get; init; }
    public required string Exe { get; init; }
    public required string Cwd { get; init; }
    public required string Root { get; init; }
    /// <summary>Null for a zombie: an exited process keeps no credentials in the image.</summary>
    public CkptCredentials? Credentials { get; init; }
    public uint? Uid => Credentials?.Uid;
    public uint? Gid => Credentials?.Gid;
    /// <summary>"running", "sleeping" (every thread inside a system call), "stopped" (by job control: SIGSTOP, SIGTSTP, ...) or "zombie" (exited, not reaped by its parent).</summary>
    public required string State { get; init; }
    /// <summary>A zombie's wait status (exit code &lt;&lt; 8, or the terminating signal); null for a live process.</summary>
    public int? ExitStatus { get; init; }
    public required int ThreadCount { get; init; }
    public required uint Umask { get; init; }
    public required uint Personality { get; init; }
    public required bool NoNewPrivileges { get; init; }
    public required ulong StartTimeTicks { get; init; }
    public required int VmaCount { get; init; }
    public required int FileCount { get; init; }
    public required ulong PagesSaved { get; init; }
    public required ulong SavedBytes { get; init; }
    /// <summary>uname -r of the machine that made the image.</summary>
    public required string KernelRelease { get; init; }
    public required DateTime CheckpointTimeUtc { get; init; }

    public override string ToString() => $"{Comm} ({Pid})";
}

/// <summary>Ids and capability sets of a task (struct cred).</summary>
public sealed class CkptCredentials
{
    public required uint Uid { get; init; }
    public required uint Euid { get; init; }
    public required uint Suid { get; init; }
    public required uint Fsuid { get; init; }
    public required uint Gid { get; init; }
    public required uint Egid { get; init; }
    public required uint Sgid { get; init; }
    public required uint Fsgid { get; init; }
    public required uint[] Groups { get; init; }
    public required ulong CapInheritable { get; init; }
    public required ulong CapPermitted { get; init; }
    public required ulong CapEffective { get; init; }
    public required ulong CapBounding { get; init; }
    public required ulong CapAmbient { get; init; }
    public required uint SecureBits { get; init; }

    public override string ToString() => $"uid={Uid} euid={Euid} gid={Gid} egid={Egid}";
}
