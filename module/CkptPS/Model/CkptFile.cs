using Ckpt.Image.Records;

namespace CkptPS;

/// <summary>One open descriptor of a checkpointed task, as `ls -l /proc/PID/fd` and fdinfo show it.</summary>
public sealed class CkptFile
{
    public required string ImagePath { get; init; }
    public required int Pid { get; init; }
    public required int Fd { get; init; }
    public required FileKind Kind { get; init; }
    public required string Path { get; init; }
    public required OpenFlags Flags { get; init; }
    public FileAccess Access => ((uint)Flags & 3) switch
    {
        1 => FileAccess.Write,
        2 => FileAccess.ReadWrite,
        _ => FileAccess.Read,
    };
    /// <summary>The descriptor link's mode as `ls -l /proc/PID/fd` shows it: lr-x------, l-wx------, lrwx------.</summary>
    public string LinkMode => Access switch
    {
        FileAccess.Write => "l-wx------",
        FileAccess.ReadWrite => "lrwx------",
        _ => "lr-x------",
    };
    public required long Position { get; init; }
    public required bool CloseOnExec { get; init; }
    /// <summary>st_mode of the file.</summary>
    public required uint Mode { get; init; }
    public required ulong Device { get; init; }
    public required ulong Inode { get; init; }
    public required long Size { get; init; }
    public required DateTime LastWriteTimeUtc { get; init; }
    /// <summary>What the kind keeps besides the file (an eventfd's counter, a pipe's buffered bytes, an epoll's watches, a timer's time left); empty for plain files.</summary>
    public string State { get; init; } = "";

    // Sockets (Kind UnixSocket or InetSocket); null for other files.
    /// <summary>Unix, Inet or Inet6.</summary>
    public SocketFamily? Family { get; init; }
    /// <summary>Stream, Datagram or SeqPacket.</summary>
    public SocketType? SocketType { get; init; }
    /// <summary>"tcp", "udp" or "" (unix).</summary>
    public string? Protocol { get; init; }
    /// <summary>Unconnected, Listening, Connected (a unix pair end, a connected UDP socket) or Established (a TCP connection saved with -TcpEstablished).</summary>
    public SocketState? SocketState { get; init; }
    /// <summary>"/run/app.sock", "@abstract", "127.0.0.1:8080", "[::1]:8080"; empty when unbound.</summary>
    public string? LocalAddress { get; init; }
    /// <summary>A connected UDP socket's or an established TCP connection's peer address; empty otherwise.</summary>
    public string? PeerAddress { get; init; }
    /// <summary>The listen(2) backlog of a listening socket.</summary>
    public int? Backlog { get; init; }
    /// <summary>Bytes waiting in the socket's receive queue (a socketpair end, an established TCP connection).</summary>
    public ulong? QueuedBytes { get; init; }
    /// <summary>"unix stream Listening /run/app.sock": the socket in one line, for the table view.</summary>
    public string? SocketSummary { get; init; }

    public override string ToString() => SocketSummary is null ? $"{Fd} -> {Path}" : $"{Fd} -> {Path} ({SocketSummary})";
}
