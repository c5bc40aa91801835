using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// A memfd's or deleted file's FILE record with its UNLINKED_FILE record and content chunks (file
/// offsets): read back as written, and each kind of lie refused at the lying record.
/// </summary>
public class UnlinkedFileImageTests
{
    private const int MemfdRef = 30;
    private const string MemfdPath = "/memfd:cache (deleted)";
    private static readonly UnlinkedFileRecord Sealed = new() { ObjRef = MemfdRef, Seals = FileSeals.Shrink | FileSeals.Grow, Uid = 1000, Gid = 100, FileSize = 3 * V3Image.PageSize + 5 };
    private static readonly ulong[] Offsets = [0, 3 * V3Image.PageSize];

    private static byte[] ImageWith(FileKind kind, string path, uint mode, UnlinkedFileRecord unlinked, params ulong[][] chunks) => new V3Image
    {
        Descriptors = (_, writer) =>
        {
            byte[] bytes = Encoding.UTF8.GetBytes(path);
            writer.Write(new FileRecord { ObjRef = MemfdRef, Kind = kind, OpenFlags = 0x8002, Mode = mode, Position = 7, FileSize = unlinked.FileSize, PathLength = (uint)bytes.Length }, bytes);
            writer.Write(unlinked);
            foreach (ulong[] chunk in chunks) V3Image.WritePages(writer, chunk);
            writer.WritePageArrayEnd();
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = MemfdRef });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.LogRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
    }.Build();

    private static byte[] MemfdWith(UnlinkedFileRecord unlinked, params ulong[][] chunks) => ImageWith(FileKind.Memfd, MemfdPath, 0x81b6, unlinked, chunks);

    [Fact]
    public void A_memfd_and_its_chunks_are_read_back()
    {
        byte[] image = MemfdWith(Sealed, [Offsets[0]], [Offsets[1]]);
        FileImage file = V3Image.Read(image).Processes[0].FileTable.Files[MemfdRef];
        UnlinkedFileImage unlinked = Assert.IsType<UnlinkedFileImage>(file.Unlinked);
        Assert.Equal(Sealed, unlinked.Record);
        Assert.Equal(Offsets, unlinked.Chunks.SelectMany(c => c.Addresses));
        // The contents are where the chunks say: the page pattern of V3Image.
        Assert.Equal(V3Image.PageByte(Offsets[1], 9), image[unlinked.Chunks[1].ContentsOffset + 9]);
    }

    [Fact]
    public void A_deleted_file_is_read_back()
    {
        var record = Sealed with { Seals = FileSeals.None };
        FileImage file = V3Image.Read(ImageWith(FileKind.DeletedFile, "/srv/data/old.log (deleted)", 0x81a4, record)).Processes[0].FileTable.Files[MemfdRef];
        Assert.Equal((record, 0), (file.Unlinked!.Record, file.Unlinked.Chunks.Count));
    }

    public static TheoryData<string, FileKind, string, uint, UnlinkedFileRecord, string> Lies => new()
    {
        { "objref", FileKind.Memfd, MemfdPath, 0x81b6, Sealed with { ObjRef = 31 }, "the UNLINKED_FILE record has objref 31" },
        { "not regular", FileKind.Memfd, MemfdPath, 0x21b6, Sealed, "is not a regular file's" },
        { "not deleted", FileKind.Memfd, "/memfd:cache", 0x81b6, Sealed, "does not end with ' (deleted)'" },
        { "memfd path", FileKind.Memfd, "/etc/shadow (deleted)", 0x81b6, Sealed, "a memfd's path is /memfd:NAME" },
        { "relative deleted path", FileKind.DeletedFile, "old.log (deleted)", 0x81a4, Sealed with { Seals = 0 }, "a deleted file's path is absolute" },
        { "unknown seal", FileKind.Memfd, MemfdPath, 0x81b6, Sealed with { Seals = (FileSeals)0x40 }, "seals 0x40 are not F_SEAL_* bits" },
        { "sealed deleted file", FileKind.DeletedFile, "/srv/x (deleted)", 0x81a4, Sealed, "seals 0x6 are not F_SEAL_* bits (or a deleted file has seals)" },
        { "negative size", FileKind.Memfd, MemfdPath, 0x81b6, Sealed with { FileSize = -1 }, "size -1 is negative" },
        { "huge size", FileKind.Memfd, MemfdPath, 0x81b6, Sealed with { FileSize = UnlinkedFileRecord.MaxSize + 1 }, "is negative or above" },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void Hostile_unlinked_file_records_are_refused(string lie, FileKind kind, string path, uint mode, UnlinkedFileRecord unlinked, string message)
    {
        _ = lie;
        byte[] image = ImageWith(kind, path, mode, unlinked);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == RecordType.UnlinkedFile && error.Offset == V3Image.OffsetOf(image, RecordType.UnlinkedFile),
            $"expected the error at UNLINKED_FILE, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains(message, error.Message);
    }

    [Theory]
    [InlineData(5ul)]                    // not page aligned
    [InlineData(4 * V3Image.PageSize)]   // beyond the size
    public void Chunk_offsets_outside_the_file_are_refused(ulong offset)
    {
        byte[] image = MemfdWith(Sealed, [offset]);
        int chunk = V3Image.Records(image).First(r => r.Type == RecordType.PageArray && r.Offset > V3Image.OffsetOf(image, RecordType.UnlinkedFile)).Offset;
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal((RecordType.PageArray, (long)chunk), (error.Record!.Value, error.Offset));
        Assert.Contains($"file offset 0x{offset:x} of unlinked file objref {MemfdRef}", error.Message);
    }

    [Fact]
    public void Chunk_offsets_out_of_order_are_refused()
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(MemfdWith(Sealed, [Offsets[1]], [Offsets[0]])));
        Assert.Equal(RecordType.PageArray, error.Record);
        Assert.Contains("out of order", error.Message);
    }
}
