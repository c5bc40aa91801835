using System.Text;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace CkptPS.Reading;

/// <summary>
/// Walks every record of an image in the order docs/ARCHITECTURE.md fixes and builds the
/// <see cref="ImageModel"/>. Get-CkptImage reads without checksum so page contents are
/// seeked over; Test-CkptImage reads (and hashes) everything and checks the tail.
/// A record out of place is an ImageFormatException naming it and its offset.
/// </summary>
internal static class ImageModelReader
{
    public static ImageModel Read(string path) => Read(path, verifyChecksum: false, out _);

    public static ImageModel Read(string path, bool verifyChecksum, out ImageReader finishedReader)
    {
        // Listing seeks from chunk header to chunk header, 4 MiB apart: a small buffer reads only
        // the headers' page from disk. Hashing reads everything, through the reader's own 64 KiB.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, verifyChecksum ? 1 << 16 : 4096);
        var reader = new ImageReader(stream, leaveOpen: false, verifyChecksum);
        try
        {
            var header = reader.ReadHeader();
            Next<HeaderArchRecord>(reader);
            var tree = Next<TreeRecord>(reader);
            var model = new ImageModel { Header = header };
            for (int i = 0; i < tree.TaskCount; i++) ReadTask(reader, path, header, model);
            // Peek first: it consumes (and hashes) the unread trailing bytes of the last record,
            // which ReadTail's checksum must include.
            if (reader.PeekType() != RecordType.Tail) Next<TailRecord>(reader);
            reader.ReadTail();
            finishedReader = reader;
            return model;
        }
        finally
        {
            reader.Dispose();
        }
    }

    private static void ReadTask(ImageReader reader, string path, HeaderRecord header, ImageModel model)
    {
        var task = Next<TaskRecord>(reader);
        string cwd = NextString(reader), root = NextString(reader), exe = NextString(reader);
        var credentials = Next<CredentialsRecord>(reader);
        uint[] groups = credentials.GroupCount > 0 ? ReadGroups(reader) : [];
        Next<TaskObjectsRecord>(reader);

        var mm = Next<MmRecord>(reader);
        var files = new Dictionary<int, (FileRecord Record, string Path)>();
        ulong pagesSaved = 0;
        for (int i = 0; i < mm.VmaCount; i++)
        {
            ReadFileIfFirstUse(reader, files);
            var vma = Next<VmaRecord>(reader);
            ulong vmaPages = SkipPageArrays(reader);
            pagesSaved += vmaPages;
            model.Vmas.Add(VmaView.Create(path, task.Pid, header.PageSize, vma, vmaPages, mm, files));
        }

        var table = Next<FileTableRecord>(reader);
        for (int i = 0; i < table.DescriptorCount; i++)
        {
            ReadFileIfFirstUse(reader, files);
            var descriptor = Next<FileDescriptorRecord>(reader);
            if (!files.TryGetValue(descriptor.FileObjRef, out var file))
                throw new ImageFormatException(RecordType.FileDescriptor, reader.CurrentRecordOffset,
                    $"fd {descriptor.Fd} refers to file objref {descriptor.FileObjRef}, which the image never defined");
            model.Files.Add(FileView.Create(path, task.Pid, descriptor, file.Record, file.Path));
        }

        ReadSignals(reader);
        for (int i = 0; i < task.ThreadCount; i++) ReadThread(reader);

        model.Tasks.Add(TaskView.Create(path, header, task, cwd, root, exe, credentials, groups,
            mm.VmaCount, table.DescriptorCount, pagesSaved));
    }

    private static void ReadSignals(ImageReader reader)
    {
        var handlers = Next<SignalHandlersRecord>(reader);
        for (int i = 0; i < handlers.ActionCount; i++) Next<SignalActionRecord>(reader);
        var signal = Next<SignalRecord>(reader);
        for (int i = 0; i < signal.PendingCount; i++) Next<SignalPendingRecord>(reader);
    }

    private static void ReadThread(ImageReader reader)
    {
        Next<ThreadRecord>(reader);
        if (reader.PeekType() == RecordType.RestartBlock) Next<RestartBlockRecord>(reader);
        Next<SignalStackRecord>(reader);
        Next<RseqRecord>(reader);
        Next<CpuRecord>(reader);
        Next<CpuXstateRecord>(reader);
    }

    private static void ReadFileIfFirstUse(ImageReader reader, Dictionary<int, (FileRecord, string)> files)
    {
        if (reader.PeekType() != RecordType.File) return;
        var file = reader.Read<FileRecord>();
        files[file.ObjRef] = (file, reader.ReadTrailingString());
    }

    /// <summary>
    /// Page chunks up to the empty one; their contents are skipped (seeked over when not hashing).
    /// Returns the pages they hold: the VMA's saved pages.
    /// </summary>
    private static ulong SkipPageArrays(ImageReader reader)
    {
        ulong pages = 0;
        for (uint count; (count = Next<PageArrayRecord>(reader).PageCount) != 0;) pages += count;
        return pages;
    }

    private static uint[] ReadGroups(ImageReader reader)
    {
        var info = Next<GroupInfoRecord>(reader);
        byte[] bytes = reader.ReadTrailingBytes();
        if (bytes.Length != info.GroupCount * sizeof(uint))
            throw new ImageFormatException(RecordType.GroupInfo, reader.CurrentRecordOffset,
                $"{info.GroupCount} groups need {info.GroupCount * sizeof(uint)} bytes, the record has {bytes.Length}");
        var groups = new uint[info.GroupCount];
        Buffer.BlockCopy(bytes, 0, groups, 0, bytes.Length);
        return groups;
    }

    /// <summary>The next record, which must be a T; an ERROR record in its place means the checkpoint failed.</summary>
    private static T Next<T>(ImageReader reader) where T : struct, IImageRecord<T>
    {
        reader.ThrowIfFailedCheckpoint();
        return reader.Read<T>();
    }

    private static string NextString(ImageReader reader)
    {
        Next<StringRecord>(reader);
        return reader.ReadTrailingString();
    }

    internal static unsafe string CString(byte* bytes, int capacity)
    {
        var span = new ReadOnlySpan<byte>(bytes, capacity);
        int end = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
    }
}
