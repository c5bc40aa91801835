using System.Diagnostics;
using System.Net;
using Ckpt.Engine.Checkpoint;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// The network lock of a checkpoint with --tcp-established (as CRIU's nftables network lock): an nftables
/// table `inet ckpt-lock-ROOTPID` whose input and output chains drop every packet of the established
/// connections to a peer outside the checkpointed tree, both directions, by address and port. It is set
/// before a connection's queues are read, so that:
/// - the peer's data is neither acknowledged nor queued after the read (it would be lost with --kill): the
///   peer sees no acknowledgement and sends it again later;
/// - between `checkpoint --kill` and the restore a packet from the peer meets no socket, and the kernel's RST
///   answering it is dropped on its way out (and the packet itself on its way in): the peer retransmits.
/// Without --kill (and after any failure) the table is deleted once the connections left repair mode; with
/// --kill it stays until `ckpt restore` deletes it, after the restored connections left repair mode. A failed
/// restore leaves it (a retry still finds the peer waiting). A stale lock goes with `nft delete table inet ckpt-lock-N`.
/// The rules are given to the nft program (nftables; CAP_NET_ADMIN, which TCP_REPAIR needs too), found in the
/// system directories or named by CKPT_NFT; a lock nft cannot set refuses the checkpoint by name.
/// </summary>
public sealed class NetworkLock(int rootPid)
{
    private static readonly string[] SystemPaths = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"];
    private bool _tableMade;

    /// <summary>The table's name, derived from the tree's root pid (which the restore gives back).</summary>
    public static string TableName(int rootPid) => $"ckpt-lock-{rootPid}";

    /// <summary>Whether this checkpoint set a lock (the table exists until <see cref="Remove()"/>).</summary>
    public bool Held => _tableMade;

    /// <summary>Drops every packet of the connection between <paramref name="local"/> and <paramref name="peer"/> (sockaddr_in or sockaddr_in6 bytes).</summary>
    public void Add(int family, byte[] local, byte[] peer, string description)
    {
        string table = TableName(rootPid);
        string script = "";
        if (!_tableMade)
            script = $"add table inet {table}\n"
                   + $"add chain inet {table} input {{ type filter hook input priority -150; policy accept; }}\n"
                   + $"add chain inet {table} output {{ type filter hook output priority -150; policy accept; }}\n";
        (string ip, string localAddress) = Address(family, local);
        (_, string peerAddress) = Address(family, peer);
        int localPort = local[2] << 8 | local[3], peerPort = peer[2] << 8 | peer[3];
        script += $"add rule inet {table} input {ip} saddr {peerAddress} tcp sport {peerPort} {ip} daddr {localAddress} tcp dport {localPort} drop\n"
                + $"add rule inet {table} output {ip} saddr {localAddress} tcp sport {localPort} {ip} daddr {peerAddress} tcp dport {peerPort} drop\n";
        try { Run(script); }
        catch (NetworkLockException e)
        {
            throw new CheckpointRefusedException($"{description}: the network lock (nftables table inet {table}, which keeps the peer from being answered with RST during the checkpoint) could not be set: {e.Message}");
        }
        _tableMade = true;
    }

    /// <summary>Deletes the table this checkpoint made, if any.</summary>
    public void Remove()
    {
        if (!_tableMade) return;
        Run($"delete table inet {TableName(rootPid)}\n");
        _tableMade = false;
    }

    /// <summary>Restore: deletes the lock a `checkpoint --kill` of <paramref name="rootPid"/> left, if there is one (and nft to see it).</summary>
    public static void RemoveLeftBy(int rootPid)
    {
        if (FindNft() is null) return; // no nft: no table could have been made on this machine
        string table = TableName(rootPid);
        try { Run($"delete table inet {table}\n"); }
        catch (NetworkLockException e) when (e.Message.Contains("No such file or directory", StringComparison.Ordinal)) { /* no lock was needed */ }
    }

    // IPv4-mapped IPv6 addresses travel as IPv4 packets: matched as such.
    private static (string Ip, string Address) Address(int family, byte[] sockaddr)
    {
        if (family == AF_INET) return ("ip", new IPAddress(sockaddr.AsSpan(4, 4)).ToString());
        var address = new IPAddress(sockaddr.AsSpan(8, 16));
        return address.IsIPv4MappedToIPv6 ? ("ip", address.MapToIPv4().ToString()) : ("ip6", address.ToString());
    }

    private static string? FindNft()
    {
        if (Environment.GetEnvironmentVariable("CKPT_NFT") is { Length: > 0 } named) return File.Exists(named) ? named : null;
        return SystemPaths.FirstOrDefault(File.Exists);
    }

    private static void Run(string script)
    {
        string nft = FindNft() ?? throw new NetworkLockException("the nft program (package nftables) was not found in /usr/sbin, /sbin, /usr/bin, /bin" + (Environment.GetEnvironmentVariable("CKPT_NFT") is { Length: > 0 } n ? $" nor at CKPT_NFT={n}" : ""));
        var start = new ProcessStartInfo(nft, ["-f", "-"]) { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        using Process process = Process.Start(start) ?? throw new NetworkLockException($"{nft} could not be started");
        process.StandardInput.Write(script);
        process.StandardInput.Close();
        string errors = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(30_000))
        {
            process.Kill();
            throw new NetworkLockException($"{nft} -f - did not finish within 30 s");
        }
        if (process.ExitCode != 0)
            throw new NetworkLockException($"{nft} -f - exited with {process.ExitCode}: {errors.Trim().ReplaceLineEndings(" ")}");
    }
}

/// <summary>nft could not be found or refused the script.</summary>
public sealed class NetworkLockException(string message) : Exception(message);
