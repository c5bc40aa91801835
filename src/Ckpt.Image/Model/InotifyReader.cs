using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The INOTIFY record and its INOTIFY_WATCH records after an inotify FILE record (ImageModelReader's
/// order): same objref, IN_NONBLOCK agreeing with the file's O_NONBLOCK, watch descriptors 1..count in
/// order, masks with events and only the bits inotify_add_watch keeps, absolute paths.
/// </summary>
internal static class InotifyReader
{
    private const uint O_NONBLOCK = 0x800;
    private const uint AllEvents = 0xfff, KeptFlags = 0x80000000 | 0x04000000; // IN_ALL_EVENTS; IN_ONESHOT, IN_EXCL_UNLINK
    public const int MaxWatches = 1 << 20;

    public static InotifyImage Read(ImageReader reader, FileRecord file)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != RecordType.Inotify)
            throw new ImageFormatException(other, reader.CurrentRecordOffset, $"found where the INOTIFY record of inotify file objref {file.ObjRef} belongs");
        var inotify = reader.Read<InotifyRecord>();
        if (inotify.ObjRef != file.ObjRef)
            throw Error(reader, RecordType.Inotify, $"has objref {inotify.ObjRef}, its FILE record {file.ObjRef}");
        if ((inotify.Flags & ~O_NONBLOCK) != 0 || (inotify.Flags & O_NONBLOCK) != (file.OpenFlags & O_NONBLOCK))
            throw Error(reader, RecordType.Inotify, $"flags 0x{inotify.Flags:x} are not IN_NONBLOCK or disagree with the file's open flags 0x{file.OpenFlags:x}");
        if (inotify.WatchCount < 0 || inotify.WatchCount > MaxWatches)
            throw Error(reader, RecordType.Inotify, $"{inotify.WatchCount} watches (at most {MaxWatches})");
        var watches = new List<(InotifyWatchRecord, string)>(Math.Min(inotify.WatchCount, 256));
        for (int i = 0; i < inotify.WatchCount; i++)
        {
            reader.ThrowIfFailedCheckpoint();
            var watch = reader.Read<InotifyWatchRecord>();
            string path = reader.ReadTrailingString();
            if (watch.WatchDescriptor != i + 1)
                throw Error(reader, RecordType.InotifyWatch, $"watch descriptor {watch.WatchDescriptor} where {i + 1} comes next (watches are numbered 1, 2, ... without gaps)");
            if ((watch.Mask & AllEvents) == 0 || (watch.Mask & ~(AllEvents | KeptFlags)) != 0)
                throw Error(reader, RecordType.InotifyWatch, $"watch {watch.WatchDescriptor} has mask 0x{watch.Mask:x}: no event, or bits inotify does not keep");
            if (!path.StartsWith('/'))
                throw Error(reader, RecordType.InotifyWatch, $"watch {watch.WatchDescriptor} has path '{path}', not an absolute path");
            watches.Add((watch, path));
        }
        return new InotifyImage(inotify, watches);
    }

    private static ImageFormatException Error(ImageReader reader, RecordType record, string problem) =>
        new(record, reader.CurrentRecordOffset, problem);
}
