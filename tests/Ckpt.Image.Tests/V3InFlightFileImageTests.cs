using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// SOCKET_RIGHTS and IN_FLIGHT_FILE: descriptors in flight in a unix stream pair's queue (fd 3 queues "abc" carrying a
/// file defined in flight and the same file again, then "de" carrying nothing; fd 5 is a descriptor of that file too).
/// The model gives each message its file objects, shared with the descriptor table; hostile records are refused naming
/// the record and its offset, and a file in flight that is not a kind the restore can make on its own is refused before
/// its records are read (a socket in flight would nest queues).
/// </summary>
public class V3InFlightFileImageTests
{
    private const int PairA = 20, PairB = 21, InFlight = 30;
    private const ulong InodeA = 9001, InodeB = 9002;
    private const string Path = "/var/lib/app/in-flight.dat";

    private static SocketRecord Unix(int objRef, ulong peer) =>
        new() { ObjRef = objRef, Family = SocketFamily.Unix, SocketType = SocketType.Stream, State = SocketState.Connected, PeerInode = peer, PeekOffset = -1 };

    private static void WriteSocketFile(ImageWriter writer, int objRef, ulong inode)
    {
        byte[] path = Encoding.UTF8.GetBytes($"socket:[{inode}]");
        writer.Write(new FileRecord { ObjRef = objRef, Kind = FileKind.UnixSocket, OpenFlags = 2, Mode = 0xC1FF, Device = 8, Inode = inode, PathLength = (uint)path.Length }, path);
    }

    private static void WriteMessage(ImageWriter writer, string text) =>
        writer.Write(new SocketQueueRecord { ObjRef = PairA, Length = (uint)text.Length }, Encoding.ASCII.GetBytes(text));

    /// <summary>The default rights of "abc": SOCKET_RIGHTS(2), FILE + IN_FLIGHT_FILE, IN_FLIGHT_FILE again.</summary>
    private static void WriteRights(ImageWriter writer)
    {
        writer.Write(new SocketRightsRecord { ObjRef = PairA, DescriptorCount = 2 });
        V3Image.WriteFile(writer, InFlight, FileKind.Regular, Path);
        writer.Write(new InFlightFileRecord { SocketObjRef = PairA, FileObjRef = InFlight });
        writer.Write(new InFlightFileRecord { SocketObjRef = PairA, FileObjRef = InFlight });
    }

    private static V3Image Builder(Action<ImageWriter>? rights = null) => new()
    {
        Descriptors = (self, writer) =>
        {
            WriteSocketFile(writer, PairA, InodeA);
            writer.Write(Unix(PairA, InodeB) with { QueuedMessages = 2, QueuedBytes = 5 });
            WriteMessage(writer, "abc");
            (rights ?? WriteRights)(writer);
            WriteMessage(writer, "de");
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = PairA });
            WriteSocketFile(writer, PairB, InodeB);
            writer.Write(Unix(PairB, InodeA));
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = PairB });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = InFlight });
        },
    };

    [Fact]
    public void EachQueuedMessageComesBackWithItsFilesSharedWithTheDescriptorTable()
    {
        FileTableImage table = V3Image.Read(Builder().Build()).Processes[0].FileTable;
        SocketImage socket = Assert.IsType<SocketImage>(table.Files[PairA].Socket);
        Assert.Equal(["abc", "de"], socket.Queue.Select(m => Encoding.ASCII.GetString(m)));
        IReadOnlyList<FileImage> files = Assert.Single(socket.InFlight, m => m.Key == 0).Value;
        Assert.Equal(2, files.Count);
        Assert.Same(files[0], files[1]);
        Assert.Same(table.Files[InFlight], files[0]);
        Assert.Equal((FileKind.Regular, Path, 3000L), (files[0].Record.Kind, files[0].Path, files[0].Record.Position));
        Assert.Empty(Assert.IsType<SocketImage>(table.Files[PairB].Socket).InFlight);
    }

    public static TheoryData<string, RecordType, int, string> HostileRights() => new()
    {
        { "objref", RecordType.SocketRights, 0, $"has objref {PairB}, after queued message 1 of socket objref {PairA}" },
        { "none", RecordType.SocketRights, 0, "carries 0 descriptors (1 to 253)" },
        { "too many", RecordType.SocketRights, 0, "carries 254 descriptors (1 to 253)" },
        { "socket in flight", RecordType.File, 3, $"file objref {InFlight} is defined in flight (SCM_RIGHTS) and is a UnixSocket" },
        { "undefined", RecordType.InFlightFile, 0, "refers to file objref 99, which no earlier FILE record defines" },
        { "itself", RecordType.InFlightFile, 0, $"refers to file objref {PairA}, which no earlier FILE record defines" },
        { "other than defined", RecordType.InFlightFile, 0, $"names file objref {PairB}, but the FILE record before it defines {InFlight}" },
        { "socket objref", RecordType.InFlightFile, 0, $"has socket objref {PairB}, in queued message 1 of socket objref {PairA}" },
        { "missing", RecordType.SocketQueue, 1, "found where descriptor 2 of 2 in flight in queued message 1" },
    };

    [Theory]
    [MemberData(nameof(HostileRights))]
    public void HostileRightsAreRefusedNamingTheRecordAndOffset(string hostile, RecordType record, int nth, string named)
    {
        void Rights(ImageWriter writer)
        {
            var rights = new SocketRightsRecord { ObjRef = PairA, DescriptorCount = 1 };
            var inFlight = new InFlightFileRecord { SocketObjRef = PairA, FileObjRef = InFlight };
            switch (hostile)
            {
                case "objref": writer.Write(rights with { ObjRef = PairB }); break;
                case "none": writer.Write(rights with { DescriptorCount = 0 }); break;
                case "too many": writer.Write(rights with { DescriptorCount = 254 }); break;
                case "socket in flight":
                    writer.Write(rights);
                    WriteSocketFile(writer, InFlight, 9100);
                    break;
                case "undefined": writer.Write(rights); writer.Write(inFlight with { FileObjRef = 99 }); break;
                case "itself": writer.Write(rights); writer.Write(inFlight with { FileObjRef = PairA }); break;
                case "other than defined":
                    writer.Write(rights);
                    V3Image.WriteFile(writer, InFlight, FileKind.Regular, Path);
                    writer.Write(inFlight with { FileObjRef = PairB });
                    break;
                case "socket objref":
                    writer.Write(rights);
                    V3Image.WriteFile(writer, InFlight, FileKind.Regular, Path);
                    writer.Write(inFlight with { SocketObjRef = PairB });
                    break;
                case "missing":
                    writer.Write(rights with { DescriptorCount = 2 });
                    V3Image.WriteFile(writer, InFlight, FileKind.Regular, Path);
                    writer.Write(inFlight);
                    break;
            }
        }
        byte[] image = Builder(Rights).Build();
        var error = Expect(image, record, Offsets(image, record)[nth]);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void APipeEndOnlyInFlightCountsAsAnEndOfItsPipe()
    {
        // The read end at fd 5, the write end only in flight: both ends exist; without the one in flight the pipe has no writer.
        const int ReadEnd = 40, WriteEnd = 41, Pipe = 42;
        void WriteEnd_(ImageWriter writer, int objRef, uint flags, bool first)
        {
            byte[] path = Encoding.UTF8.GetBytes("pipe:[777]");
            writer.Write(new FileRecord { ObjRef = objRef, Kind = FileKind.Pipe, OpenFlags = flags, Mode = 0x1180, Device = 12, Inode = 777, PathLength = (uint)path.Length }, path);
            if (first) writer.Write(new PipeBufferRecord { PipeObjRef = Pipe, PipeSize = 65536, DataLength = 0 });
            else writer.Write(new ObjrefRecord { ObjectType = ObjectType.Pipe, ObjRef = Pipe });
        }
        V3Image Image(bool writerInFlight) => new()
        {
            Descriptors = (self, writer) =>
            {
                WriteSocketFile(writer, PairA, InodeA);
                writer.Write(Unix(PairA, InodeB) with { QueuedMessages = 1, QueuedBytes = 1 });
                WriteMessage(writer, "P");
                if (writerInFlight)
                {
                    writer.Write(new SocketRightsRecord { ObjRef = PairA, DescriptorCount = 1 });
                    WriteEnd_(writer, WriteEnd, 1, first: true);
                    writer.Write(new InFlightFileRecord { SocketObjRef = PairA, FileObjRef = WriteEnd });
                }
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = PairA });
                WriteSocketFile(writer, PairB, InodeB);
                writer.Write(Unix(PairB, InodeA));
                writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = PairB });
                WriteEnd_(writer, ReadEnd, 0, first: !writerInFlight);
                writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = ReadEnd });
            },
        };
        ImageModel model = V3Image.Read(Image(writerInFlight: true).Build());
        FileTableImage table = model.Processes[0].FileTable;
        Assert.Same(table.Files[ReadEnd].Pipe, table.Files[PairA].Socket!.InFlight[0][0].Pipe);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(Image(writerInFlight: false).Build()));
        Assert.Contains($"pipe objref {Pipe} has no write end", error.Message);
    }

    private static int[] Offsets(byte[] image, RecordType type) => V3Image.Records(image).Where(r => r.Type == type).Select(r => r.Offset).ToArray();

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
