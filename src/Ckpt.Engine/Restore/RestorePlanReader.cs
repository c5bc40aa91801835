using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Reads a whole image into a <see cref="RestorePlan"/>, with <see cref="ImageModelReader"/>: every
/// record is read and checked, page contents are seeked over, and the checksum of the whole image
/// is computed on another core while the restore goes on (<see cref="RestorePlan.ChecksumMatches"/>,
/// awaited before the process is released). Every problem is an <see cref="ImageFormatException"/> naming
/// the record and its offset; an image of a failed checkpoint is a <see cref="FailedCheckpointException"/>.
/// </summary>
public static class RestorePlanReader
{
    /// <summary>Reads an image file; "-" spools standard input to an unlinked temporary file first.</summary>
    /// <param name="deferChecksum">a lazy restore: the hash starts with <see cref="RestorePlan.StartChecksum"/>, once the process runs</param>
    /// <param name="deferPageAddresses">a lazy restore: private anonymous VMAs' page addresses are read by the page server (<see cref="ImageReader.DeferAnonymousPageAddresses"/>)</param>
    public static RestorePlan Read(string path, Stream? standardInput = null, bool deferChecksum = false, bool deferPageAddresses = false)
    {
        ImageSource? stdinSource = path == "-" ? SourceOfStandardInput(standardInput) : null;
        SafeFileHandle handle = path == "-" ? SpoolToUnlinkedFile(standardInput ?? Console.OpenStandardInput())
            : File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        try
        {
            ImageSource source = stdinSource ?? SourceOf(path, (int)handle.DangerousGetHandle());
            // A second open of the same file for the pass over the records: the plan keeps the first.
            // A small buffer: each seek over a chunk's contents then reads only the next headers.
            using var stream = new FileStream($"/proc/self/fd/{handle.DangerousGetHandle()}", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 16 << 10);
            using var reader = new ImageReader(stream, leaveOpen: true, verifyChecksum: false) { DeferAnonymousPageAddresses = deferPageAddresses };
            return ReadPlan(reader, handle, source, deferChecksum);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The image model of a restorable image: every record checked, a live root (also the fuzzer's entry).</summary>
    public static ImageModel ReadModel(ImageReader reader)
    {
        ImageModel image = ImageModelReader.Read(reader);
        if (image.Processes.Count == 0 || image.Processes[0].Pid != image.RootPid)
            throw new ImageFormatException(RecordType.Tree, 0, $"the root of the tree, process {image.RootPid}, is a zombie: there is nothing to restore");
        return image;
    }

    // The image may come from a pipe: keep it in a file nobody can see (and that vanishes with us).
    private static SafeFileHandle SpoolToUnlinkedFile(Stream input)
    {
        string temporary = Path.Combine(Path.GetTempPath(), $"ckpt-restore-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        SafeFileHandle handle = File.OpenHandle(temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
        File.Delete(temporary);
        byte[] buffer = new byte[1 << 20];
        long offset = 0;
        int n;
        while ((n = input.Read(buffer)) > 0)
        {
            RandomAccess.Write(handle, buffer.AsSpan(0, n), offset);
            offset += n;
        }
        return handle;
    }

    private static ImageSource SourceOf(string name, int fd)
    {
        Native.Stat stat = Security.SecurityNative.Fstat(fd, name);
        bool regular = (stat.Mode & Security.SecurityNative.S_IFMT) == Security.SecurityNative.S_IFREG;
        return new ImageSource(name, regular ? stat.Uid : null, stat.Mode);
    }

    // Standard input redirected from a file says who owns it; a pipe (or a stream handed in) does not.
    private static ImageSource SourceOfStandardInput(Stream? given) =>
        given is null ? SourceOf("standard input", 0) : new ImageSource("the given stream", null, 0);

    private static RestorePlan ReadPlan(ImageReader reader, SafeFileHandle handle, ImageSource source, bool deferChecksum)
    {
        ImageModel image = ReadModel(reader);
        var checksum = new Task<bool>(() => ImageChecksum.Matches(handle, image.TailOffset, image.Tail.Checksum), TaskCreationOptions.LongRunning);
        if (!deferChecksum) checksum.Start();
        return new RestorePlan { Image = image, ImageFile = handle, Source = source, ChecksumMatches = checksum };
    }
}
