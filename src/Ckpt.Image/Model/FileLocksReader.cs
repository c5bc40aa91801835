using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The FILE_LOCK records after a FILE_TABLE's descriptors (ImageModelReader's order): each names a
/// regular file or directory of that table, a known lock family and type, and a byte range a
/// struct flock can hold (flock locks cover the whole file: start 0, length 0).
/// </summary>
internal static class FileLocksReader
{
    public static List<FileLockRecord> Read(ImageReader reader, IReadOnlyDictionary<int, FileImage> files)
    {
        var locks = new List<FileLockRecord>();
        while (true)
        {
            reader.ThrowIfFailedCheckpoint();
            if (reader.PeekType() != RecordType.FileLock) return locks;
            if (locks.Count >= ImageLimits.MaxDescriptors)
                throw Error(reader, $"more than {ImageLimits.MaxDescriptors} file locks");
            var fileLock = reader.Read<FileLockRecord>();
            if (Problem(fileLock, files) is { } problem)
                throw Error(reader, $"lock on file objref {fileLock.FileObjRef}: {problem}");
            locks.Add(fileLock);
        }
    }

    private static string? Problem(FileLockRecord fileLock, IReadOnlyDictionary<int, FileImage> files)
    {
        if (!files.TryGetValue(fileLock.FileObjRef, out FileImage? file))
            return "no descriptor of this table uses that file";
        if (file.Record.Kind is not (FileKind.Regular or FileKind.Directory))
            return $"the file is a {file.Record.Kind}, locks are restored on regular files and directories only";
        if (fileLock.Kind is not (FileLockKind.Flock or FileLockKind.Posix or FileLockKind.Ofd))
            return $"lock kind {(uint)fileLock.Kind} is not FLOCK, POSIX or OFDLCK";
        if (fileLock.Exclusive > 1)
            return $"exclusive {fileLock.Exclusive} is neither 0 (read) nor 1 (write)";
        if (fileLock.Start < 0 || fileLock.Length < 0 || fileLock.Start > long.MaxValue - fileLock.Length)
            return $"range start {fileLock.Start} length {fileLock.Length} is negative or beyond the largest offset";
        if (fileLock.Kind == FileLockKind.Flock && (fileLock.Start != 0 || fileLock.Length != 0))
            return $"a flock lock covers the whole file, not start {fileLock.Start} length {fileLock.Length}";
        return null;
    }

    private static ImageFormatException Error(ImageReader reader, string problem) =>
        new(RecordType.FileLock, reader.CurrentRecordOffset, problem);
}
