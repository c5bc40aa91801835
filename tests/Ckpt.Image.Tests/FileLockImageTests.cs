using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// FILE_LOCK records (after the FILE_TABLE's descriptors): read back as written, and each kind of lie
/// refused at the lying record with a message that says what is wrong.
/// </summary>
public class FileLockImageTests
{
    // V3Image's table: fd 3 the log (regular), fd 4 /dev/null (a character device), fd 5 the library (regular).
    private static readonly FileLockRecord Whole = new() { FileObjRef = V3Image.LogRef, Kind = FileLockKind.Flock, Exclusive = 1 };
    private static readonly FileLockRecord Range = new() { FileObjRef = V3Image.LibraryRef, Kind = FileLockKind.Posix, Exclusive = 0, Start = 200, Length = 0 };
    private static readonly FileLockRecord Ofd = new() { FileObjRef = V3Image.LogRef, Kind = FileLockKind.Ofd, Exclusive = 1, Start = 10, Length = 10 };

    private static byte[] ImageWith(params FileLockRecord[] locks) => new V3Image
    {
        Descriptors = (_, writer) =>
        {
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = V3Image.LogRef, CloseOnExec = 1 });
            V3Image.WriteFile(writer, V3Image.DevNullRef, FileKind.CharacterDevice, V3Image.DevNullPath);
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.DevNullRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
            foreach (FileLockRecord fileLock in locks) writer.Write(fileLock);
        },
    }.Build();

    [Fact]
    public void Locks_are_read_back_with_every_field()
    {
        var table = V3Image.Read(ImageWith(Whole, Range, Ofd)).Processes[0].FileTable;
        Assert.Equal([Whole, Range, Ofd], table.Locks);
        Assert.Equal(3, table.Descriptors.Count);
    }

    [Fact]
    public void An_image_without_locks_has_none() => Assert.Empty(V3Image.Read(new V3Image().Build()).Processes[0].FileTable.Locks);

    public static TheoryData<string, FileLockRecord, string> Lies => new()
    {
        { "unknown file", Whole with { FileObjRef = 99 }, "no descriptor of this table uses that file" },
        { "a device", Whole with { FileObjRef = V3Image.DevNullRef }, "the file is a CharacterDevice" },
        { "kind 0", Whole with { Kind = 0 }, "lock kind 0 is not FLOCK, POSIX or OFDLCK" },
        { "kind 4", Whole with { Kind = (FileLockKind)4 }, "lock kind 4 is not" },
        { "exclusive 2", Whole with { Exclusive = 2 }, "exclusive 2 is neither" },
        { "negative start", Range with { Start = -1 }, "range start -1 length 0 is negative" },
        { "negative length", Range with { Length = -5 }, "is negative or beyond" },
        { "overflowing range", Range with { Start = long.MaxValue, Length = 2 }, "beyond the largest offset" },
        { "flock with a range", Whole with { Start = 4, Length = 1 }, "a flock lock covers the whole file" },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void Hostile_locks_are_refused_naming_the_record(string lie, FileLockRecord fileLock, string message)
    {
        _ = lie;
        byte[] image = ImageWith(Whole, fileLock);
        int offset = V3Image.OffsetOf(image, RecordType.FileLock, 1);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == RecordType.FileLock && error.Offset == offset,
            $"expected the error at FILE_LOCK offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void A_lock_before_its_file_is_refused()
    {
        // Between the descriptors: the reader expects a FILE or a FILE_DESCRIPTOR there.
        byte[] image = new V3Image
        {
            Descriptors = (_, writer) =>
            {
                writer.Write(Whole);
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = V3Image.LogRef });
            },
        }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.FileLock, error.Record);
    }
}
