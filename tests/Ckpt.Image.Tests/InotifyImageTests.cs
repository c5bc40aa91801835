using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// An inotify FILE record with its INOTIFY and INOTIFY_WATCH records: read back as written, and each
/// kind of lie refused at the lying record.
/// </summary>
public class InotifyImageTests
{
    private const int InotifyRef = 20;
    private static readonly InotifyRecord Instance = new() { ObjRef = InotifyRef, Flags = 0x800, WatchCount = 2 };
    private static readonly InotifyWatchRecord First = new() { WatchDescriptor = 1, Mask = 0x100, Device = 0x803, Inode = 77 };
    private static readonly InotifyWatchRecord Second = new() { WatchDescriptor = 2, Mask = 0x80000002, Device = 0x803, Inode = 78 };

    private static byte[] ImageWith(InotifyRecord instance, params (InotifyWatchRecord Watch, string Path)[] watches) => new V3Image
    {
        Descriptors = (_, writer) =>
        {
            byte[] target = Encoding.UTF8.GetBytes("anon_inode:inotify");
            writer.Write(new FileRecord { ObjRef = InotifyRef, Kind = FileKind.Inotify, OpenFlags = 0x80800, PathLength = (uint)target.Length }, target);
            writer.Write(instance);
            foreach (var (watch, path) in watches)
            {
                byte[] bytes = Encoding.UTF8.GetBytes(path);
                writer.Write(watch with { PathLength = (uint)bytes.Length }, bytes);
            }
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = InotifyRef });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.LogRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
    }.Build();

    [Fact]
    public void The_instance_and_its_watches_are_read_back()
    {
        FileTableImage table = V3Image.Read(ImageWith(Instance, (First, "/srv/dir"), (Second, "/srv/dir/file"))).Processes[0].FileTable;
        InotifyImage inotify = Assert.IsType<InotifyImage>(table.Files[InotifyRef].Inotify);
        Assert.Equal(Instance, inotify.Record);
        Assert.Equal([(1, 0x100u, 77ul, "/srv/dir"), (2, 0x80000002u, 78ul, "/srv/dir/file")],
            inotify.Watches.Select(w => (w.Watch.WatchDescriptor, w.Watch.Mask, w.Watch.Inode, w.Path)));
    }

    public static TheoryData<string, InotifyRecord, InotifyWatchRecord, string, RecordType, string> Lies => new()
    {
        { "objref", Instance with { ObjRef = 21 }, Second, "/a", RecordType.Inotify, "has objref 21, its FILE record 20" },
        { "flags", Instance with { Flags = 0x80000 }, Second, "/a", RecordType.Inotify, "flags 0x80000 are not IN_NONBLOCK" },
        { "nonblock disagrees", Instance with { Flags = 0 }, Second, "/a", RecordType.Inotify, "disagree with the file's open flags" },
        { "negative count", Instance with { WatchCount = -1 }, Second, "/a", RecordType.Inotify, "-1 watches" },
        { "gap", Instance, Second with { WatchDescriptor = 3 }, "/a", RecordType.InotifyWatch, "watch descriptor 3 where 2 comes next" },
        { "no event", Instance, Second with { Mask = 0x80000000 }, "/a", RecordType.InotifyWatch, "has mask 0x80000000: no event" },
        { "add-time flag", Instance, Second with { Mask = 0x01000002 }, "/a", RecordType.InotifyWatch, "bits inotify does not keep" },
        { "relative path", Instance, Second, "etc/passwd", RecordType.InotifyWatch, "not an absolute path" },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void Hostile_inotify_records_are_refused(string lie, InotifyRecord instance, InotifyWatchRecord second, string path, RecordType record, string message)
    {
        _ = lie;
        byte[] image = ImageWith(instance, (First, "/srv/dir"), (second, path));
        int offset = record == RecordType.Inotify ? V3Image.OffsetOf(image, record) : V3Image.OffsetOf(image, record, 1);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == record && error.Offset == offset, $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void An_inotify_file_without_its_instance_record_is_refused()
    {
        byte[] image = new V3Image
        {
            Descriptors = (_, writer) =>
            {
                byte[] target = Encoding.UTF8.GetBytes("anon_inode:inotify");
                writer.Write(new FileRecord { ObjRef = InotifyRef, Kind = FileKind.Inotify, PathLength = (uint)target.Length }, target);
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = InotifyRef });
            },
        }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.FileDescriptor, error.Record);
        Assert.Contains("where the INOTIFY record of inotify file objref 20 belongs", error.Message);
    }
}
