using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// TCP_CONNECTION and TCP_QUEUE_DATA records: an established IPv4 connection 127.0.0.1:8080 -> 127.0.0.1:40000
/// (fd 3) with a receive queue in two chunks and a send queue of which the last bytes were never sent
/// comes back in the model as written; hostile values and queues that disagree with the record are refused
/// naming the record and its offset.
/// </summary>
public class V3TcpConnectionImageTests
{
    private const int Connection = 20;
    private const ulong Inode = 9101;
    private static readonly byte[] Received = Enumerable.Range(0, TcpConnectionRecord.MaxChunk + 100).Select(i => (byte)(i * 7)).ToArray();
    private static readonly byte[] Sent = Encoding.ASCII.GetBytes("sent and not acknowledged|never sent");

    private static unsafe SocketRecord Socket()
    {
        var record = new SocketRecord
        {
            ObjRef = Connection, Family = SocketFamily.Inet, SocketType = SocketType.Stream, Protocol = 6, State = SocketState.Established,
            Options = SocketOptions.NoDelay, LocalAddressLength = 16, PeerAddressLength = 16,
        };
        byte[] local = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], peer = [2, 0, 0x9c, 0x40, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        for (int i = 0; i < 16; i++) (record.LocalAddress[i], record.PeerAddress[i]) = (local[i], peer[i]);
        return record;
    }

    private static TcpConnectionRecord Tcp() => new()
    {
        ObjRef = Connection, State = TcpState.Established, SendSequence = 0xFFFF_FFF0, ReceiveSequence = 12345,
        SendQueueBytes = (uint)Sent.Length, UnsentBytes = 10, ReceiveQueueBytes = (uint)Received.Length, MaxSegmentSize = 65483,
        Options = TcpOptions.All, SendWindowScale = 7, ReceiveWindowScale = 9, Timestamp = 424242,
        SendWindowUpdateSequence = 12000, SendWindow = 65536, MaxWindow = 70000, ReceiveWindow = 64000, ReceiveWindowUpdate = 12345,
    };

    private static void Chunk(ImageWriter writer, TcpQueue queue, ReadOnlySpan<byte> bytes, int objRef = Connection) =>
        writer.Write(new TcpQueueDataRecord { ObjRef = objRef, Queue = queue, Length = (uint)bytes.Length }, bytes);

    private static void Queues(ImageWriter writer)
    {
        Chunk(writer, TcpQueue.Receive, Received.AsSpan(0, TcpConnectionRecord.MaxChunk));
        Chunk(writer, TcpQueue.Receive, Received.AsSpan(TcpConnectionRecord.MaxChunk));
        Chunk(writer, TcpQueue.Send, Sent);
    }

    /// <summary>fd 3 the connection; fds 4 and 5 the library (V3Image's table has 3 descriptors).</summary>
    private static byte[] Build(Func<SocketRecord, SocketRecord>? editSocket = null, Func<TcpConnectionRecord, TcpConnectionRecord>? editTcp = null,
        Action<ImageWriter>? queues = null, bool withTcp = true) => new V3Image
    {
        Descriptors = (self, writer) =>
        {
            byte[] path = Encoding.UTF8.GetBytes($"socket:[{Inode}]");
            writer.Write(new FileRecord { ObjRef = Connection, Kind = FileKind.InetSocket, OpenFlags = 2, Mode = 0xC1FF, Device = 8, Inode = Inode, PathLength = (uint)path.Length }, path);
            writer.Write((editSocket ?? (r => r))(Socket()));
            if (withTcp) writer.Write((editTcp ?? (r => r))(Tcp()));
            (queues ?? Queues)(writer);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = Connection });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.LibraryRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
    }.Build();

    [Fact]
    public void AnEstablishedConnectionComesBackWithItsSequenceNumbersOptionsWindowAndQueues()
    {
        SocketImage socket = Assert.IsType<SocketImage>(V3Image.Read(Build()).Processes[0].FileTable.Files[Connection].Socket);
        Assert.Equal(("127.0.0.1:8080", "127.0.0.1:40000", "inet tcp", SocketState.Established), (socket.LocalAddress, socket.PeerAddress, socket.Description, socket.Record.State));
        TcpConnectionImage tcp = Assert.IsType<TcpConnectionImage>(socket.Tcp);
        Assert.Equal(Tcp(), tcp.Record);
        Assert.Equal(Received, tcp.ReceiveQueue);
        Assert.Equal(Sent, tcp.SendQueue);
        Assert.Equal("sent and not acknowledged|", Encoding.ASCII.GetString(tcp.SentQueue));
        Assert.Equal("never sent", Encoding.ASCII.GetString(tcp.UnsentQueue));
    }

    [Fact]
    public void AConnectionWithEmptyQueuesNeedsNoQueueRecords()
    {
        byte[] image = Build(editTcp: t => t with { SendQueueBytes = 0, UnsentBytes = 0, ReceiveQueueBytes = 0 }, queues: _ => { });
        TcpConnectionImage tcp = V3Image.Read(image).Processes[0].FileTable.Files[Connection].Socket!.Tcp!;
        Assert.Empty(tcp.ReceiveQueue);
        Assert.Empty(tcp.SendQueue);
    }

    public static TheoryData<string, string> HostileConnections() => new()
    {
        { "objref", "has objref 21, its SOCKET record 20" },
        { "state", "TCP state 2 is not ESTABLISHED" },
        { "queue", "queues 20 bytes to receive and 67108865 to send" },
        { "unsent", "says 37 bytes were never sent of a send queue of 36" },
        { "mss", "maximum segment size 0" },
        { "options", "options 0x8 have unknown bits" },
        { "scale", "window scales 15/9" },
        { "scaleWithoutOption", "set without the window scale option" },
        { "timestamp", "timestamp clock without the timestamp option" },
        { "reserved", "reserved fields" },
    };

    [Theory]
    [MemberData(nameof(HostileConnections))]
    public void HostileConnectionRecordsAreRefusedNamingTheRecordAndOffset(string field, string named)
    {
        TcpConnectionRecord Edit(TcpConnectionRecord t) => field switch
        {
            "objref" => t with { ObjRef = 21 },
            "state" => t with { State = (TcpState)2 },
            "queue" => t with { ReceiveQueueBytes = 20, SendQueueBytes = TcpConnectionRecord.MaxQueueBytes + 1 },
            "unsent" => t with { UnsentBytes = 37 },
            "mss" => t with { MaxSegmentSize = 0 },
            "options" => t with { Options = (TcpOptions)8 },
            "scale" => t with { SendWindowScale = 15 },
            "scaleWithoutOption" => t with { Options = TcpOptions.Sack },
            "timestamp" => t with { Options = TcpOptions.Sack | TcpOptions.WindowScale },
            _ => t with { Reserved2 = 1 },
        };
        byte[] image = Build(editTcp: Edit);
        Assert.Contains(named, Expect(image, RecordType.TcpConnection, Offsets(image, RecordType.TcpConnection)[0]).Message);
    }

    public static TheoryData<string> HostileSockets() => new() { "unix", "udp", "noPeer", "portZero", "shutdown" };

    [Theory]
    [MemberData(nameof(HostileSockets))]
    public unsafe void AnEstablishedSocketThatIsNotATcpConnectionWithAddressesIsRefused(string field)
    {
        SocketRecord Edit(SocketRecord s)
        {
            switch (field)
            {
                case "unix": s.Family = SocketFamily.Unix; break;
                case "udp": (s.SocketType, s.Protocol) = (SocketType.Datagram, 17); break;
                case "noPeer": s.PeerAddressLength = 0; break;
                case "portZero": s.PeerAddress[2] = 0; s.PeerAddress[3] = 0; break;
                case "shutdown": s.Shutdown = SocketShutdown.Send; break;
            }
            return s;
        }
        byte[] image = Build(editSocket: Edit);
        var error = Expect(image, RecordType.Socket, Offsets(image, RecordType.Socket)[0]);
        Assert.True(error.Message.Contains("established connection, but not a TCP socket") || error.Message.Contains("does not belong"), error.Message);
    }

    [Fact]
    public void QueuesThatDisagreeWithTheirConnectionAreRefused()
    {
        byte[] longer = Build(queues: w => { Queues(w); Chunk(w, TcpQueue.Send, "x"u8); });
        Assert.Contains("more queue data than", Expect(longer, RecordType.TcpQueueData, Offsets(longer, RecordType.TcpQueueData)[3]).Message);
        byte[] overflow = Build(queues: w => { Queues(w); }, editTcp: t => t with { SendQueueBytes = 3, UnsentBytes = 0 });
        Assert.Contains("no more than the 3 left", Expect(overflow, RecordType.TcpQueueData, Offsets(overflow, RecordType.TcpQueueData)[2]).Message);
        byte[] swapped = Build(queues: w => { Chunk(w, TcpQueue.Send, Sent); Chunk(w, TcpQueue.Receive, Received.AsSpan(0, 10)); });
        Assert.Contains("queue 2 where Receive queue data", Expect(swapped, RecordType.TcpQueueData, Offsets(swapped, RecordType.TcpQueueData)[0]).Message);
        byte[] other = Build(queues: w => Chunk(w, TcpQueue.Receive, Received.AsSpan(0, 10), objRef: 99));
        Assert.Contains("has objref 99", Expect(other, RecordType.TcpQueueData, Offsets(other, RecordType.TcpQueueData)[0]).Message);
        byte[] empty = Build(queues: w => Chunk(w, TcpQueue.Receive, ReadOnlySpan<byte>.Empty));
        Assert.Contains("holds 0 bytes", Expect(empty, RecordType.TcpQueueData, Offsets(empty, RecordType.TcpQueueData)[0]).Message);
        byte[] missing = Build(queues: w => Chunk(w, TcpQueue.Receive, Received.AsSpan(0, 10)));
        Assert.Contains("Receive queue byte 10", Expect(missing, RecordType.FileDescriptor, Offsets(missing, RecordType.FileDescriptor)[0]).Message);
    }

    [Fact]
    public void AnEstablishedSocketWithoutItsConnectionRecordIsRefused()
    {
        byte[] image = Build(withTcp: false, queues: _ => { });
        Assert.Contains($"TCP_CONNECTION record of established socket objref {Connection}", Expect(image, RecordType.FileDescriptor, Offsets(image, RecordType.FileDescriptor)[0]).Message);
    }

    private static int[] Offsets(byte[] image, RecordType type) => V3Image.Records(image).Where(r => r.Type == type).Select(r => r.Offset).ToArray();

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains($"record {ImageFormatException.RecordName(record)} at offset {offset}", error.Message);
        return error;
    }
}
