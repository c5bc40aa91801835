using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// UNIX_PENDING_CONNECTION and UDP_DATAGRAM records: a unix stream listener (fd 3, "@listener") with a client
/// waiting in its accept queue (fd 4), and a UDP socket on 127.0.0.1:5000 (fd 5) with two datagrams, one sent
/// by itself and one from 127.0.0.1:6000, come back in the model; hostile values are refused naming the
/// record and its offset.
/// </summary>
public class V3SocketQueueImageTests
{
    private const int ListenerRef = 20, ClientRef = 21, UdpRef = 22;
    private const ulong ListenerInode = 9101, ClientInode = 9102, UdpInode = 9103;

    private static unsafe SocketRecord Listener()
    {
        var record = new SocketRecord { ObjRef = ListenerRef, Family = SocketFamily.Unix, SocketType = SocketType.Stream, State = SocketState.Listening, Backlog = 4, PeekOffset = -1, LocalAddressLength = 11 };
        byte[] address = [1, 0, 0, .. "listener"u8];
        for (int i = 0; i < address.Length; i++) record.LocalAddress[i] = address[i];
        return record;
    }

    private static SocketRecord Client() =>
        new() { ObjRef = ClientRef, Family = SocketFamily.Unix, SocketType = SocketType.Stream, State = SocketState.PendingConnection, PeekOffset = -1 };

    private static unsafe SocketRecord Udp()
    {
        var record = new SocketRecord { ObjRef = UdpRef, Family = SocketFamily.Inet, SocketType = SocketType.Datagram, Protocol = 17, State = SocketState.Unconnected, LocalAddressLength = 16, QueuedMessages = 2, QueuedBytes = 8 };
        byte[] address = Inet(5000);
        for (int i = 0; i < address.Length; i++) record.LocalAddress[i] = address[i];
        return record;
    }

    private static byte[] Inet(int port) => [2, 0, (byte)(port >> 8), (byte)port, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];

    private static unsafe UdpDatagramRecord Datagram(int port, ulong sender)
    {
        var record = new UdpDatagramRecord { ObjRef = UdpRef, SourceAddressLength = 16, SenderInode = sender };
        byte[] address = Inet(port);
        for (int i = 0; i < address.Length; i++) record.SourceAddress[i] = address[i];
        return record;
    }

    private static void WriteFile(ImageWriter writer, int objRef, FileKind kind, ulong inode)
    {
        byte[] path = Encoding.UTF8.GetBytes($"socket:[{inode}]");
        writer.Write(new FileRecord { ObjRef = objRef, Kind = kind, OpenFlags = 2, Mode = 0xC1FF, Device = 8, Inode = inode, PathLength = (uint)path.Length }, path);
    }

    private static V3Image Builder(Func<SocketRecord, SocketRecord>? editClient = null, Action<ImageWriter>? pending = null,
        Func<SocketRecord, SocketRecord>? editUdp = null, Action<ImageWriter>? datagrams = null) => new()
    {
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, ListenerRef, FileKind.UnixSocket, ListenerInode);
            writer.Write(Listener());
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = ListenerRef });
            WriteFile(writer, ClientRef, FileKind.UnixSocket, ClientInode);
            writer.Write((editClient ?? (r => r))(Client()));
            (pending ?? (w => w.Write(new UnixPendingConnectionRecord { ObjRef = ClientRef, Position = 0, ListenerInode = ListenerInode })))(writer);
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = ClientRef });
            WriteFile(writer, UdpRef, FileKind.InetSocket, UdpInode);
            writer.Write((editUdp ?? (r => r))(Udp()));
            (datagrams ?? (w =>
            {
                w.Write(Datagram(5000, UdpInode) with { Length = 3 }, "one"u8);
                w.Write(Datagram(6000, 0) with { Length = 5 }, "other"u8);
            }))(writer);
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = UdpRef });
        },
    };

    [Fact]
    public void APendingConnectionAndQueuedDatagramsComeBackWithTheirListenerSourcesAndSenders()
    {
        FileTableImage files = V3Image.Read(Builder().Build()).Processes[0].FileTable;
        SocketImage client = Assert.IsType<SocketImage>(files.Files[ClientRef].Socket);
        Assert.Equal(SocketState.PendingConnection, client.Record.State);
        Assert.Equal((ListenerInode, 0u), (client.PendingConnection!.Value.ListenerInode, client.PendingConnection.Value.Position));
        Assert.Equal("@listener", files.Files[ListenerRef].Socket!.LocalAddress);
        SocketImage udp = Assert.IsType<SocketImage>(files.Files[UdpRef].Socket);
        Assert.Equal(["one", "other"], udp.Queue.Select(m => Encoding.ASCII.GetString(m)));
        Assert.Equal(("127.0.0.1:5000", "127.0.0.1:6000"), (udp.SourceOf(0), udp.SourceOf(1)));
        Assert.Equal([UdpInode, 0UL], udp.Datagrams.Select(d => d.SenderInode));
    }

    [Fact]
    public void APendingConnectionToNoListenerOfTheImageOrAtAWrongPlaceIsRefused()
    {
        byte[] unknown = Builder(pending: w => w.Write(new UnixPendingConnectionRecord { ObjRef = ClientRef, ListenerInode = 777 })).Build();
        Assert.Contains("listener inode 777 is not a listening unix Stream socket", Expect(unknown, RecordType.Socket, Offsets(unknown, RecordType.Socket)[1]).Message);
        byte[] seqpacket = Builder(editClient: c => c with { SocketType = SocketType.SeqPacket }).Build();
        Assert.Contains("is not a listening unix SeqPacket socket", Expect(seqpacket, RecordType.Socket, Offsets(seqpacket, RecordType.Socket)[1]).Message);
        byte[] place = Builder(pending: w => w.Write(new UnixPendingConnectionRecord { ObjRef = ClientRef, Position = 1, ListenerInode = ListenerInode })).Build();
        Assert.Contains("hold positions 1, not 0 to 0", Expect(place, RecordType.Socket, Offsets(place, RecordType.Socket)[0]).Message);
        byte[] full = new V3Image
        {
            Descriptors = (self, writer) =>
            {
                WriteFile(writer, ListenerRef, FileKind.UnixSocket, ListenerInode);
                writer.Write(Listener() with { Backlog = 0 });
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = ListenerRef });
                for (int i = 0; i < 2; i++)
                {
                    WriteFile(writer, ClientRef + i, FileKind.UnixSocket, ClientInode + (ulong)i);
                    writer.Write(Client() with { ObjRef = ClientRef + i });
                    writer.Write(new UnixPendingConnectionRecord { ObjRef = ClientRef + i, Position = (uint)i, ListenerInode = ListenerInode });
                    writer.Write(new FileDescriptorRecord { Fd = 4 + i, FileObjRef = ClientRef + i });
                }
            },
        }.Build();
        Assert.Contains("2 pending connections, more than its backlog 0 + 1", Expect(full, RecordType.Socket, Offsets(full, RecordType.Socket)[0]).Message);
        byte[] own = Builder(pending: w => w.Write(new UnixPendingConnectionRecord { ObjRef = ClientRef, ListenerInode = ClientInode })).Build();
        Assert.Contains("is none or its own", Expect(own, RecordType.UnixPendingConnection, Offsets(own, RecordType.UnixPendingConnection)[0]).Message);
        byte[] other = Builder(pending: w => w.Write(new UnixPendingConnectionRecord { ObjRef = UdpRef, ListenerInode = ListenerInode })).Build();
        Assert.Contains($"has objref {UdpRef}", Expect(other, RecordType.UnixPendingConnection, Offsets(other, RecordType.UnixPendingConnection)[0]).Message);
        byte[] missing = Builder(pending: _ => { }).Build();
        Assert.Contains($"UNIX_PENDING_CONNECTION record of socket objref {ClientRef}", Expect(missing, RecordType.FileDescriptor, Offsets(missing, RecordType.FileDescriptor)[1]).Message);
    }

    [Fact]
    public void APendingConnectionThatIsADatagramSocketOrHasAPeerOrDataIsRefused()
    {
        foreach (Func<SocketRecord, SocketRecord> edit in new Func<SocketRecord, SocketRecord>[]
                 { c => c with { SocketType = SocketType.Datagram }, c => c with { PeerInode = ListenerInode }, c => c with { Shutdown = SocketShutdown.Send } })
        {
            byte[] image = Builder(editClient: edit).Build();
            Assert.Contains("pending connection", Expect(image, RecordType.Socket, Offsets(image, RecordType.Socket)[1]).Message);
        }
    }

    [Fact]
    public unsafe void HostileDatagramsAreRefusedNamingTheRecordAndOffset()
    {
        byte[] length = Builder(datagrams: w => w.Write(Datagram(5000, 0) with { SourceAddressLength = 28, Length = 3 }, "one"u8)).Build();
        Assert.Contains("source address of 28 bytes", Expect(length, RecordType.UdpDatagram, Offsets(length, RecordType.UdpDatagram)[0]).Message);
        byte[] port = Builder(datagrams: w => w.Write(Datagram(0, 0) with { Length = 3 }, "one"u8)).Build();
        Assert.Contains("source port is 0", Expect(port, RecordType.UdpDatagram, Offsets(port, RecordType.UdpDatagram)[0]).Message);
        UdpDatagramRecord family = OfFamily(Datagram(5000, 0) with { Length = 3 }, 10);
        byte[] wrongFamily = Builder(datagrams: w => w.Write(family, "one"u8)).Build();
        Assert.Contains("source address is of family 10", Expect(wrongFamily, RecordType.UdpDatagram, Offsets(wrongFamily, RecordType.UdpDatagram)[0]).Message);
        byte[] objRef = Builder(datagrams: w => w.Write(Datagram(5000, 0) with { ObjRef = ClientRef, Length = 3 }, "one"u8)).Build();
        Assert.Contains($"has objref {ClientRef}", Expect(objRef, RecordType.UdpDatagram, Offsets(objRef, RecordType.UdpDatagram)[0]).Message);
        byte[] sender = Builder().Build();
        byte[] unknownSender = Builder(datagrams: w =>
        {
            w.Write(Datagram(5000, 4242) with { Length = 3 }, "one"u8);
            w.Write(Datagram(6000, 0) with { Length = 5 }, "other"u8);
        }).Build();
        Assert.Contains("sender inode 4242 is not a UDP socket", Expect(unknownSender, RecordType.Socket, Offsets(unknownSender, RecordType.Socket)[2]).Message);
        byte[] wrongPort = Builder(datagrams: w =>
        {
            w.Write(Datagram(5001, UdpInode) with { Length = 3 }, "one"u8);
            w.Write(Datagram(6000, 0) with { Length = 5 }, "other"u8);
        }).Build();
        Assert.Contains("bound to its port", Expect(wrongPort, RecordType.Socket, Offsets(wrongPort, RecordType.Socket)[2]).Message);
        Assert.NotNull(V3Image.Read(sender));
    }

    [Fact]
    public void AUdpQueueOfTheWrongRecordOrCountIsRefused()
    {
        byte[] queueRecord = Builder(datagrams: w => w.Write(new SocketQueueRecord { ObjRef = UdpRef, Length = 3 }, "one"u8)).Build();
        Assert.Contains("queued message 1 of 2", Expect(queueRecord, RecordType.SocketQueue, Offsets(queueRecord, RecordType.SocketQueue)[0]).Message);
        byte[] extra = Builder(editUdp: u => u with { QueuedMessages = 1, QueuedBytes = 3 }).Build();
        Assert.Contains("one more than the 1 queued messages", Expect(extra, RecordType.UdpDatagram, Offsets(extra, RecordType.UdpDatagram)[1]).Message);
        byte[] tcp = Builder(editUdp: u => u with { SocketType = SocketType.Stream, Protocol = 6 }, datagrams: _ => { }).Build();
        Assert.Contains("neither a socketpair end nor a UDP socket", Expect(tcp, RecordType.Socket, Offsets(tcp, RecordType.Socket)[2]).Message);
    }

    private static unsafe UdpDatagramRecord OfFamily(UdpDatagramRecord record, byte family)
    {
        record.SourceAddress[0] = family;
        return record;
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
