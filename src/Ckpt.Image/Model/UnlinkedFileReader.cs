using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The UNLINKED_FILE record and its content chunks after a memfd's or deleted file's FILE record
/// (ImageModelReader's order): same objref, a regular file's mode, a path of the kind's form, known
/// seals (none for a deleted file), a size within bounds, and chunks of page-aligned, increasing file
/// offsets below the size, which is the FILE record's. The file is defined by its first use, a
/// descriptor or a mapping (VMA), and every later use names it by objref.
/// </summary>
internal static class UnlinkedFileReader
{
    private const string Deleted = " (deleted)", MemfdPrefix = "/memfd:";
    private const int MaxMemfdName = 249; // MFD_NAME_MAX_LEN
    private const uint S_IFMT = 0xf000, S_IFREG = 0x8000;
    private const FileSeals KnownSeals = FileSeals.Seal | FileSeals.Shrink | FileSeals.Grow | FileSeals.Write | FileSeals.FutureWrite | FileSeals.Exec;

    public static UnlinkedFileImage Read(ImageReader reader, FileRecord file, string path)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != RecordType.UnlinkedFile)
            throw new ImageFormatException(other, reader.CurrentRecordOffset, $"found where the UNLINKED_FILE record of {file.Kind} file objref {file.ObjRef} belongs");
        var unlinked = reader.Read<UnlinkedFileRecord>();
        if (Problem(unlinked, file, path) is { } problem)
            throw new ImageFormatException(RecordType.UnlinkedFile, reader.CurrentRecordOffset, $"{file.Kind} file objref {file.ObjRef} ({path}): {problem}");
        return new UnlinkedFileImage(unlinked, ReadChunks(reader, unlinked));
    }

    private static string? Problem(UnlinkedFileRecord unlinked, FileRecord file, string path)
    {
        if (unlinked.ObjRef != file.ObjRef)
            return $"the UNLINKED_FILE record has objref {unlinked.ObjRef}";
        if ((file.Mode & S_IFMT) != S_IFREG)
            return $"mode 0{Convert.ToString(file.Mode, 8)} is not a regular file's";
        if (!path.EndsWith(Deleted, StringComparison.Ordinal))
            return $"the path does not end with '{Deleted}'";
        if (file.Kind == FileKind.Memfd && (!path.StartsWith(MemfdPrefix, StringComparison.Ordinal) || path.Length - MemfdPrefix.Length - Deleted.Length > MaxMemfdName))
            return $"a memfd's path is {MemfdPrefix}NAME{Deleted} with a name of at most {MaxMemfdName} bytes";
        if (file.Kind == FileKind.DeletedFile && (!path.StartsWith('/') || path.StartsWith(MemfdPrefix, StringComparison.Ordinal)))
            return "a deleted file's path is absolute";
        if ((unlinked.Seals & ~KnownSeals) != 0 || (file.Kind == FileKind.DeletedFile && unlinked.Seals != 0))
            return $"seals 0x{(uint)unlinked.Seals:x} are not F_SEAL_* bits (or a deleted file has seals)";
        if (unlinked.FileSize < 0 || unlinked.FileSize > UnlinkedFileRecord.MaxSize)
            return $"size {unlinked.FileSize} is negative or above {UnlinkedFileRecord.MaxSize}";
        // Both are the file's st_size at the checkpoint: a restore sizes the file by one and a reader may show the other.
        if (unlinked.FileSize != file.FileSize)
            return $"size {unlinked.FileSize} disagrees with the FILE record's size {file.FileSize}";
        return null;
    }

    private static List<PageChunk> ReadChunks(ImageReader reader, UnlinkedFileRecord unlinked)
    {
        var chunks = new List<PageChunk>();
        ulong previous = 0;
        bool first = true;
        while (true)
        {
            reader.ThrowIfFailedCheckpoint();
            var array = reader.Read<PageArrayRecord>();
            if (array.PageCount == 0) return chunks;
            var offsets = new ulong[array.PageCount];
            reader.ReadPageAddresses(offsets);
            foreach (ulong offset in offsets)
            {
                if (offset % reader.PageSize != 0 || offset >= (ulong)unlinked.FileSize || (!first && offset <= previous))
                    throw new ImageFormatException(RecordType.PageArray, reader.CurrentRecordOffset,
                        $"file offset 0x{offset:x} of unlinked file objref {unlinked.ObjRef} is not page aligned, beyond its size {unlinked.FileSize} or out of order");
                (previous, first) = (offset, false);
            }
            chunks.Add(new PageChunk(offsets, reader.Position));
            reader.SkipPageContents();
        }
    }
}
