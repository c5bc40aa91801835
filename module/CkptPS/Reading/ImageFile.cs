using Ckpt.Image;
using Ckpt.Image.Model;

namespace CkptPS.Reading;

/// <summary>
/// Opens an image file for <see cref="ImageModelReader"/>, the one reader of the record order
/// (in Ckpt.Image). Get-CkptImage reads without checksum so page contents are seeked over;
/// Test-CkptImage reads (and hashes) everything and checks the tail. A record out of place is
/// an ImageFormatException naming it and its offset.
/// </summary>
internal static class ImageFile
{
    public static ImageModel Read(string path) => Read(path, verifyChecksum: false, out _);

    public static ImageModel Read(string path, bool verifyChecksum, out ImageReader finishedReader)
    {
        // Listing seeks from chunk header to chunk header, 4 MiB apart: a small buffer reads only
        // the headers' page from disk. Hashing reads everything, through the reader's own 64 KiB.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, verifyChecksum ? 1 << 16 : 4096);
        using var reader = new ImageReader(stream, leaveOpen: false, verifyChecksum);
        var model = ImageModelReader.Read(reader);
        finishedReader = reader;
        return model;
    }
}
