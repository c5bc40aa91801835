using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// SOCKET and SOCKET_QUEUE records: a unix socketpair (fd 3, 4) with queued messages, a TCP listener
/// on 127.0.0.1:8080 (fd 5) come back in the model with their addresses and queues; hostile values are
/// refused naming the record and its offset.
/// </summary>
public class V3SocketImageTests
{
    private const int PairA = 20, PairB = 21, Listener = 22;
    private const ulong InodeA = 9001, InodeB = 9002, InodeListener = 9003;

    private static unsafe SocketRecord Unix(int objRef, ulong peer, SocketType type = SocketType.SeqPacket) =>
        new() { ObjRef = objRef, Family = SocketFamily.Unix, SocketType = type, State = SocketState.Connected, PeerInode = peer, PeekOffset = -1 };

    private static unsafe SocketRecord Tcp()
    {
        var record = new SocketRecord
        {
            ObjRef = Listener, Family = SocketFamily.Inet, SocketType = SocketType.Stream, Protocol = 6, State = SocketState.Listening,
            Backlog = 128, Options = SocketOptions.ReuseAddress, LocalAddressLength = 16,
        };
        byte[] address = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]; // AF_INET, port 8080, 127.0.0.1
        for (int i = 0; i < address.Length; i++) record.LocalAddress[i] = address[i];
        return record;
    }

    private static void WriteFile(ImageWriter writer, int objRef, FileKind kind, ulong inode)
    {
        byte[] path = Encoding.UTF8.GetBytes($"socket:[{inode}]");
        writer.Write(new FileRecord { ObjRef = objRef, Kind = kind, OpenFlags = 2, Mode = 0xC1FF, Device = 8, Inode = inode, PathLength = (uint)path.Length }, path);
    }

    private static void WriteQueue(ImageWriter writer, int objRef, params string[] messages)
    {
        foreach (string message in messages)
            writer.Write(new SocketQueueRecord { ObjRef = objRef, Length = (uint)message.Length }, Encoding.ASCII.GetBytes(message));
    }

    /// <summary>fd 3/4 a seqpacket pair ("a", "", "ccc" queued at fd 3), fd 5 a TCP listener (V3Image's table has 3 descriptors).</summary>
    private static V3Image Builder(Func<SocketRecord, SocketRecord>? editA = null, Action<ImageWriter>? queueA = null, Func<SocketRecord, SocketRecord>? editListener = null) => new()
    {
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, PairA, FileKind.UnixSocket, InodeA);
            SocketRecord a = (editA ?? (r => r))(Unix(PairA, InodeB) with { QueuedMessages = 3, QueuedBytes = 4 });
            writer.Write(a);
            if (queueA is not null) queueA(writer);
            else WriteQueue(writer, PairA, "a", "", "ccc");
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = PairA });
            WriteFile(writer, PairB, FileKind.UnixSocket, InodeB);
            writer.Write(Unix(PairB, InodeA) with { Shutdown = SocketShutdown.Send });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = PairB });
            WriteFile(writer, Listener, FileKind.InetSocket, InodeListener);
            writer.Write((editListener ?? (r => r))(Tcp()));
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = Listener });
        },
    };

    [Fact]
    public void SocketsComeBackWithTheirPairQueueAndAddresses()
    {
        FileTableImage files = V3Image.Read(Builder().Build()).Processes[0].FileTable;
        SocketImage a = Assert.IsType<SocketImage>(files.Files[PairA].Socket), b = Assert.IsType<SocketImage>(files.Files[PairB].Socket);
        Assert.Equal((InodeB, InodeA), (a.Record.PeerInode, b.Record.PeerInode));
        Assert.Equal(["a", "", "ccc"], a.Queue.Select(m => Encoding.ASCII.GetString(m)));
        Assert.Empty(b.Queue);
        Assert.Equal(SocketShutdown.Send, b.Record.Shutdown);
        Assert.Equal("unix seqpacket", a.Description);
        SocketImage listener = Assert.IsType<SocketImage>(files.Files[Listener].Socket);
        Assert.Equal(("127.0.0.1:8080", "", "inet tcp", 128), (listener.LocalAddress, listener.PeerAddress, listener.Description, listener.Record.Backlog));
    }

    public static TheoryData<string, string> HostileSockets() => new()
    {
        { "family", "family 2 does not belong" },
        { "type", "type 3 with protocol 0" },
        { "state", "state 9 is not a socket state" },
        { "backlog", "backlog 5 on a socket that is Connected" },
        { "shutdown", "shutdown 0x4" },
        { "options", "options 0x80000000" },
        { "buffer", "negative buffer size" },
        { "address", "local address length 200" },
        { "addressFamily", "local address is of family 2" },
        { "relative", "not absolute" },
        { "objref", $"has objref {Listener}" },
        { "self", "peer inode 9001" },
        { "mode", "bound file mode 01000" },
    };

    [Theory]
    [MemberData(nameof(HostileSockets))]
    public unsafe void HostileSocketRecordsAreRefusedNamingTheRecordAndOffset(string field, string named)
    {
        SocketRecord Edit(SocketRecord r)
        {
            switch (field)
            {
                case "family": r.Family = SocketFamily.Inet; break;
                case "type": r.SocketType = (SocketType)3; break;
                case "state": r.State = (SocketState)9; break;
                case "backlog": r.Backlog = 5; break;
                case "shutdown": r.Shutdown = (SocketShutdown)4; break;
                case "options": r.Options = (SocketOptions)0x8000_0000; break;
                case "buffer": r.SendBuffer = -1; break;
                case "address": r.LocalAddressLength = 200; break;
                case "addressFamily": r.LocalAddressLength = 4; r.LocalAddress[0] = 2; break;
                case "relative": r.LocalAddressLength = 5; r.LocalAddress[0] = 1; r.LocalAddress[2] = (byte)'a'; r.LocalAddress[3] = (byte)'b'; r.LocalAddress[4] = 0; break;
                case "objref": r.ObjRef = Listener; break;
                case "self": r.PeerInode = InodeA; break;
                case "mode": r.BoundFileMode = 0x200; break;
            }
            return r;
        }
        byte[] image = Builder(Edit).Build();
        var error = Expect(image, RecordType.Socket, Offsets(image, RecordType.Socket)[0]);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void AQueueThatDisagreesWithItsSocketIsRefused()
    {
        byte[] longer = Builder(queueA: w => WriteQueue(w, PairA, "a", "", "cccc")).Build();
        Assert.Contains("SOCKET record says 4", Expect(longer, RecordType.SocketQueue, Offsets(longer, RecordType.SocketQueue)[2]).Message);
        byte[] shorter = Builder(queueA: w => WriteQueue(w, PairA, "a", "", "c")).Build();
        Assert.Contains("says 4 queued bytes", Expect(shorter, RecordType.Socket, Offsets(shorter, RecordType.Socket)[0]).Message);
        byte[] missing = Builder(queueA: w => WriteQueue(w, PairA, "a", "ccc")).Build();
        Assert.Contains("queued message 3 of 3", Expect(missing, RecordType.FileDescriptor, Offsets(missing, RecordType.FileDescriptor)[0]).Message);
        byte[] other = Builder(queueA: w => WriteQueue(w, PairB, "a", "", "ccc")).Build();
        Assert.Contains($"has objref {PairB}", Expect(other, RecordType.SocketQueue, Offsets(other, RecordType.SocketQueue)[0]).Message);
    }

    [Fact]
    public void AQueueOnASocketThatIsNotAPairEndIsRefused()
    {
        byte[] image = Builder(editListener: r => r with { QueuedMessages = 1, QueuedBytes = 1 }).Build();
        Assert.Contains("neither a socketpair end nor a UDP socket", Expect(image, RecordType.Socket, Offsets(image, RecordType.Socket)[2]).Message);
    }

    [Fact]
    public void APairEndWhosePeerIsMissingOrOfAnotherTypeIsRefused()
    {
        byte[] missing = Builder(a => a with { PeerInode = 777 }).Build();
        Assert.Contains("peer inode 777", Expect(missing, RecordType.Socket, Offsets(missing, RecordType.Socket)[0]).Message);
        byte[] stream = Builder(a => a with { SocketType = SocketType.Stream, QueuedMessages = 0, QueuedBytes = 0 }, queueA: _ => { }).Build();
        Assert.Contains("naming it back", Expect(stream, RecordType.Socket, Offsets(stream, RecordType.Socket)[0]).Message);
    }

    [Fact]
    public void ASocketFileWithoutItsSocketRecordIsRefused()
    {
        var builder = new V3Image
        {
            Descriptors = (self, writer) =>
            {
                WriteFile(writer, Listener, FileKind.InetSocket, InodeListener);
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = Listener });
                writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = Listener });
                writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
            },
        };
        byte[] image = builder.Build();
        Assert.Contains($"SOCKET record of socket file objref {Listener}", Expect(image, RecordType.FileDescriptor, Offsets(image, RecordType.FileDescriptor)[0]).Message);
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
