using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// The EVENTFD record: it follows the FILE record of an eventfd (Kind = Eventfd) and comes back in
/// the model as that file object's state, shared by every descriptor of the object; a lying or
/// missing EVENTFD record is refused naming it.
/// </summary>
public class V3EventfdImageTests
{
    private const int EventfdRef = 20;
    private const uint O_RDWR = 2, O_NONBLOCK = 0x800;
    private const string Path = "anon_inode:[eventfd]";

    /// <summary>fd 3 and fd 4 (a dup) share one eventfd, fd 5 is the library (as V3Image writes it).</summary>
    private static V3Image Builder(Action<ImageWriter>? writeEventfd = null, uint openFlags = O_RDWR | O_NONBLOCK) => new()
    {
        Descriptors = (self, writer) =>
        {
            byte[] path = Encoding.UTF8.GetBytes(Path);
            writer.Write(new FileRecord { ObjRef = EventfdRef, Kind = FileKind.Eventfd, OpenFlags = openFlags, Mode = 0x180, Device = 0xf, Inode = 1038, PathLength = (uint)path.Length }, path);
            if (writeEventfd is not null) writeEventfd(writer);
            else writer.Write(Eventfd());
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = EventfdRef });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = EventfdRef, CloseOnExec = 1 });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
    };

    private static EventfdRecord Eventfd() => new() { ObjRef = EventfdRef, Flags = EventfdFlags.Semaphore | EventfdFlags.NonBlock, Count = 0x1_0000_0003 };

    [Fact]
    public void AnEventfdComesBackWithItsCounterAndFlagsSharedByItsDescriptors()
    {
        ImageModel model = V3Image.Read(Builder().Build());
        FileTableImage files = model.Processes[0].FileTable;
        Assert.Equal([3, 4, 5], files.Descriptors.Select(d => d.Fd));
        FileImage eventfd = files.Files[EventfdRef];
        Assert.Equal((FileKind.Eventfd, Path, O_RDWR | O_NONBLOCK), (eventfd.Record.Kind, eventfd.Path, eventfd.Record.OpenFlags));
        EventfdRecord record = Assert.NotNull(eventfd.Eventfd);
        Assert.Equal((EventfdRef, EventfdFlags.Semaphore | EventfdFlags.NonBlock, 0x1_0000_0003ul), (record.ObjRef, record.Flags, record.Count));
        Assert.Null(files.Files[V3Image.LibraryRef].Eventfd);
        Assert.Equal(EventfdRecord.MaxCount, V3Image.Read(Builder(w => w.Write(Eventfd() with { Count = EventfdRecord.MaxCount })).Build())
            .Processes[0].FileTable.Files[EventfdRef].Eventfd!.Value.Count);
    }

    [Theory]
    [InlineData(0x80000u, "flags 0x80800")]         // EFD_CLOEXEC belongs to the descriptor
    [InlineData(0x4u, "flags 0x804")]
    [InlineData(0x8000_0000u, "flags 0x80000800")]
    public void UnknownFlagsAreRefused(uint extra, string named)
    {
        byte[] image = Builder(w => w.Write(Eventfd() with { Flags = EventfdFlags.NonBlock | (EventfdFlags)extra })).Build();
        var error = Expect(image, RecordType.Eventfd, Offset(image, RecordType.Eventfd));
        Assert.Contains(named, error.Message);
        Assert.Contains("EFD_SEMAPHORE/EFD_NONBLOCK", error.Message);
    }

    [Fact]
    public void NonBlockThatDisagreesWithTheFileIsRefused()
    {
        byte[] image = Builder(openFlags: O_RDWR).Build();
        Assert.Contains("O_NONBLOCK", Expect(image, RecordType.Eventfd, Offset(image, RecordType.Eventfd)).Message);
    }

    [Fact]
    public void ACountAboveTheEventfdMaximumIsRefused()
    {
        byte[] image = Builder(w => w.Write(Eventfd() with { Count = ulong.MaxValue })).Build();
        Assert.Contains("count 0xffffffffffffffff", Expect(image, RecordType.Eventfd, Offset(image, RecordType.Eventfd)).Message);
    }

    [Fact]
    public void AnEventfdRecordOfAnotherObjectIsRefused()
    {
        byte[] image = Builder(w => w.Write(Eventfd() with { ObjRef = V3Image.LogRef })).Build();
        Assert.Contains($"objref {V3Image.LogRef}", Expect(image, RecordType.Eventfd, Offset(image, RecordType.Eventfd)).Message);
    }

    [Fact]
    public void AnEventfdWithoutItsRecordIsRefusedAtWhatCameInstead()
    {
        byte[] image = Builder(_ => { }).Build();
        var error = Expect(image, RecordType.FileDescriptor, Offset(image, RecordType.FileDescriptor));
        Assert.Contains($"EVENTFD record of eventfd file objref {EventfdRef}", error.Message);
    }

    [Fact]
    public void AnEventfdRecordAfterARegularFileIsRefused()
    {
        var builder = new V3Image
        {
            Descriptors = (self, writer) =>
            {
                V3Image.WriteFile(writer, EventfdRef, FileKind.Regular, "/tmp/regular");
                writer.Write(Eventfd());
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = EventfdRef });
                writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = EventfdRef });
                writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
            },
        };
        byte[] image = builder.Build();
        Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
    }

    private static int Offset(byte[] image, RecordType type) => V3Image.Records(image).First(r => r.Type == type).Offset;

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains($"record {ImageFormatException.RecordName(record)} at offset {offset}", error.Message);
        return error;
    }
}
