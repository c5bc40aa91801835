using System.Buffers.Binary;
using System.Globalization;

namespace Ckpt.Engine.Linux;

/// <summary>One UDP socket of /proc/net/udp or /proc/net/udp6: its inode, family, bound address, receive queue and drop counter.</summary>
/// <param name="Address">the bound IP in IPv6 form (an IPv4 address as ::ffff:a.b.c.d, 0.0.0.0 as ::ffff:0.0.0.0)</param>
/// <param name="ReceiveQueue">the receive queue's memory (rx_queue: sk_rmem_alloc, grows with every datagram queued)</param>
public sealed record UdpTableEntry(ulong Inode, int Family, byte[] Address, int Port, long ReceiveQueue = 0, ulong Drops = 0)
{
    /// <summary>An IPv4 address (::ffff:a.b.c.d).</summary>
    public static bool IsMapped(ReadOnlySpan<byte> address) => address[..10].IndexOfAnyExcept((byte)0) < 0 && address[10] == 0xff && address[11] == 0xff;

    /// <summary>Bound to every address of its family (0.0.0.0 or ::).</summary>
    public bool Wildcard => Family == SocketNative.AF_INET ? Address.AsSpan(12).IndexOfAnyExcept((byte)0) < 0 : Address.AsSpan().IndexOfAnyExcept((byte)0) < 0;
}

/// <summary>
/// The UDP sockets of the engine's network namespace as /proc/net/udp and /proc/net/udp6 list them
/// (addresses as hex words in host order, "inode" and "drops" columns): which socket holds a port, and
/// how many datagrams a socket dropped because its receive buffer was full.
/// </summary>
public static class UdpTable
{
    public static IEnumerable<UdpTableEntry> Read()
    {
        foreach ((string file, int family) in new[] { ("/proc/net/udp", SocketNative.AF_INET), ("/proc/net/udp6", SocketNative.AF_INET6) })
        {
            if (!File.Exists(file)) continue;
            foreach (string line in File.ReadLines(file).Skip(1))
            {
                string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 13 || fields[1].Split(':') is not [var address, var port]) continue;
                if (fields[4].Split(':') is not [_, var receive]) continue;
                yield return new UdpTableEntry(ulong.Parse(fields[9], CultureInfo.InvariantCulture), family, Address(address),
                    int.Parse(port, NumberStyles.HexNumber, CultureInfo.InvariantCulture), long.Parse(receive, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    ulong.Parse(fields[^1], CultureInfo.InvariantCulture));
            }
        }
    }

    /// <summary>The socket with this inode, or null.</summary>
    public static UdpTableEntry? Find(ulong inode) => Read().FirstOrDefault(e => e.Inode == inode);

    /// <summary>An IP of a sockaddr_in or sockaddr_in6 in the table's IPv6 form.</summary>
    public static byte[] AddressOf(ReadOnlySpan<byte> sockaddr)
    {
        var address = new byte[16];
        if (BinaryPrimitives.ReadUInt16LittleEndian(sockaddr) == SocketNative.AF_INET)
        {
            address[10] = address[11] = 0xff;
            sockaddr.Slice(4, 4).CopyTo(address.AsSpan(12));
        }
        else sockaddr.Slice(8, 16).CopyTo(address);
        return address;
    }

    // Each 32-bit word is printed in host (little endian) order.
    private static byte[] Address(string hex)
    {
        var words = new byte[hex.Length / 2];
        for (int i = 0; i < hex.Length / 8; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(words.AsSpan(4 * i), uint.Parse(hex.AsSpan(8 * i, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        if (words.Length == 16) return words;
        var mapped = new byte[16];
        mapped[10] = mapped[11] = 0xff;
        words.CopyTo(mapped, 12);
        return mapped;
    }
}
