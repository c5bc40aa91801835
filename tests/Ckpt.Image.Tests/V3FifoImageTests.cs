using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Named pipes: a FIFO end is a FILE of kind Fifo whose path is the FIFO's, followed by the PIPE_BUF of
/// its FIFO object (ObjectType.Fifo) on first use or an OBJREF to it. A FIFO may have only one kind of end
/// and read-write ends; lies are refused naming the record and its offset.
/// </summary>
public class V3FifoImageTests
{
    private const int ReadEndRef = 20, RwEndRef = 21, FifoRef = 22;
    private const uint O_RDONLY = 0, O_RDWR = 2, O_NONBLOCK = 0x800;
    private const string Path = "/run/app/control.fifo";
    private const string DeletedPath = Path + " (deleted)";
    private static readonly byte[] InFlight = Encoding.ASCII.GetBytes("queued command\n");

    private static void WriteFile(ImageWriter writer, int objRef, string path, uint flags, FileKind kind = FileKind.Fifo)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        writer.Write(new FileRecord { ObjRef = objRef, Kind = kind, OpenFlags = flags, Mode = 0x1180, Device = 0x803, Inode = 4242, PathLength = (uint)bytes.Length }, bytes);
    }

    private static PipeBufferRecord Buffer(uint size = 65536) => new() { PipeObjRef = FifoRef, PipeSize = size, DataLength = (uint)InFlight.Length };

    /// <summary>fd 3 a read end (FILE + PIPE_BUF), fd 4 a read-write end (FILE + OBJREF Fifo), fd 5 the library.</summary>
    private static byte[] FifoImage(Action<ImageWriter>? writeBuffer = null, Action<ImageWriter>? writeOtherEnd = null, string path = Path, uint otherFlags = O_RDWR, bool secondEnd = true,
        FileKind kind = FileKind.Fifo) => new V3Image
    {
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, ReadEndRef, path, O_RDONLY | O_NONBLOCK, kind);
            if (writeBuffer is not null) writeBuffer(writer);
            else writer.Write(Buffer(), InFlight);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = ReadEndRef });
            if (secondEnd)
            {
                WriteFile(writer, RwEndRef, kind == FileKind.DeletedFifo ? DeletedPath : Path, otherFlags, kind);
                if (writeOtherEnd is not null) writeOtherEnd(writer);
                else writer.Write(new ObjrefRecord { ObjectType = ObjectType.Fifo, ObjRef = FifoRef });
                writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = RwEndRef });
            }
            else writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = ReadEndRef }); // a dup of the read end
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
    }.Build();

    [Fact]
    public void TwoEndsShareOneFifoWithItsBytesAndPath()
    {
        FileTableImage files = V3Image.Read(FifoImage()).Processes[0].FileTable;
        FileImage read = files.Files[ReadEndRef], both = files.Files[RwEndRef];
        Assert.Same(read.Fifo, both.Fifo);
        Assert.Null(read.Pipe);
        Assert.Equal((FifoRef, 65536u, Path, Path), (read.Fifo!.Record.PipeObjRef, read.Fifo.Record.PipeSize, read.Path, both.Path));
        Assert.Equal(InFlight, read.Fifo.Data);
        Assert.Equal("read-write end, FIFO of 65536 bytes, 15 buffered", FileStateText.Describe(both));
    }

    [Fact]
    public void AFifoWithOnlyAReadEndIsAFifo()
    {
        FileTableImage files = V3Image.Read(FifoImage(secondEnd: false)).Processes[0].FileTable;
        Assert.Equal(InFlight, files.Files[ReadEndRef].Fifo!.Data);
    }

    [Theory]
    [InlineData("relative/fifo")]
    [InlineData("/tmp/fifo (deleted)")]
    [InlineData("")]
    public void AFifoPathThatCannotBeReopenedIsRefused(string path)
    {
        byte[] image = FifoImage(path: path);
        Assert.Contains($"has path '{path}': a FIFO is reopened by an absolute path", Expect(image, RecordType.File, V3Image.OffsetOf(image, RecordType.File, FirstFifoFile(image))).Message);
    }

    [Fact]
    public void TwoEndsOfADeletedFifoShareItWithItsBytesAndTheirPath()
    {
        FileTableImage files = V3Image.Read(FifoImage(path: DeletedPath, kind: FileKind.DeletedFifo)).Processes[0].FileTable;
        FileImage read = files.Files[ReadEndRef], both = files.Files[RwEndRef];
        Assert.Equal((FileKind.DeletedFifo, FileKind.DeletedFifo), (read.Record.Kind, both.Record.Kind));
        Assert.Same(read.Fifo, both.Fifo);
        Assert.Equal((DeletedPath, DeletedPath), (read.Path, both.Path));
        Assert.Equal(InFlight, read.Fifo!.Data);
    }

    [Theory]
    [InlineData("/run/app/control.fifo")]
    [InlineData("relative/fifo (deleted)")]
    [InlineData("/run/../etc/fifo (deleted)")]
    [InlineData("")]
    public void ADeletedFifoPathThatIsNotOneIsRefused(string path)
    {
        byte[] image = FifoImage(path: path, kind: FileKind.DeletedFifo);
        Assert.Contains($"deleted FIFO end objref {ReadEndRef} has path '{path}': an absolute path ending in \" (deleted)\" is expected",
            Expect(image, RecordType.File, V3Image.OffsetOf(image, RecordType.File, FirstFifoFile(image, FileKind.DeletedFifo))).Message);
    }

    [Fact]
    public void ADeletedFifoEndWithoutItsBufferOrWithAccessMode3IsRefused()
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(FifoImage(writeBuffer: _ => { }, path: DeletedPath, kind: FileKind.DeletedFifo)));
        Assert.Contains("PipeBuffer record of DeletedFifo file objref 20 belongs", error.Message);
        byte[] image = FifoImage(otherFlags: 3, path: DeletedPath, kind: FileKind.DeletedFifo);
        Assert.Contains("has access mode 3: a FIFO end reads, writes or both", Expect(image, RecordType.File, V3Image.OffsetOf(image, RecordType.File, FirstFifoFile(image, FileKind.DeletedFifo) + 1)).Message);
    }

    [Fact]
    public void AnEndWithAccessMode3IsRefused()
    {
        byte[] image = FifoImage(otherFlags: 3);
        Assert.Contains("has access mode 3: a FIFO end reads, writes or both", Expect(image, RecordType.File, V3Image.OffsetOf(image, RecordType.File, FirstFifoFile(image) + 1)).Message);
    }

    [Fact]
    public void AnEndReferringToAPipeObjectOrAnUndefinedFifoIsRefused()
    {
        byte[] image = FifoImage(writeOtherEnd: w => w.Write(new ObjrefRecord { ObjectType = ObjectType.Pipe, ObjRef = FifoRef }));
        Assert.Contains($"refers to Pipe {FifoRef}, which is no FIFO defined earlier", Expect(image, RecordType.Objref, LastObjref(image)).Message);
        image = FifoImage(writeOtherEnd: w => w.Write(new ObjrefRecord { ObjectType = ObjectType.Fifo, ObjRef = 99 }));
        Assert.Contains("refers to Fifo 99, which is no FIFO defined earlier", Expect(image, RecordType.Objref, LastObjref(image)).Message);
    }

    [Fact]
    public void AFifoEndWithoutItsBufferIsRefused()
    {
        byte[] image = FifoImage(writeBuffer: _ => { });
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Contains("PipeBuffer record of Fifo file objref 20 belongs", error.Message);
    }

    [Theory]
    [InlineData(1000u)]
    [InlineData(8u << 20)]
    public void AFifoOfAnImpossibleSizeIsRefused(uint size)
    {
        byte[] image = FifoImage(writeBuffer: w => w.Write(Buffer(size), InFlight));
        Assert.Contains($"has size {size}", Expect(image, RecordType.PipeBuffer, V3Image.OffsetOf(image, RecordType.PipeBuffer)).Message);
    }

    // The nth FILE record that is a FIFO end's (the library's FILE comes first, in the memory section).
    private static int FirstFifoFile(byte[] image, FileKind kind = FileKind.Fifo)
    {
        var files = V3Image.Records(image).Where(r => r.Type == RecordType.File).ToList();
        return files.FindIndex(r => FileRecord.ReadFrom(image.AsSpan(r.Offset, FileRecord.Size)).Kind == kind);
    }

    // The OBJREF right after the second FIFO end's FILE record.
    private static int LastObjref(byte[] image)
    {
        var records = V3Image.Records(image);
        int file = records.FindIndex(r => r.Type == RecordType.File && FileRecord.ReadFrom(image.AsSpan(r.Offset, FileRecord.Size)).ObjRef == RwEndRef);
        return records[file + 1].Offset;
    }

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
