using Ckpt.Image;
using Ckpt.Image.Records;

namespace CkptPS.Reading;

/// <summary>Test-CkptImage's check: every record and page read and hashed, the tail's checksum compared.</summary>
internal static class ImageValidator
{
    public static CkptImageValidation Validate(string path)
    {
        long length = new FileInfo(path).Length;
        try
        {
            var model = ImageFile.Read(path, verifyChecksum: true, out var reader);
            if (!reader.ChecksumVerified)
                return Invalid(path, length, "the checksum could not be verified", RecordType.Tail, null);
            return new CkptImageValidation
            {
                ImagePath = path, IsValid = true, Length = length, RecordCount = reader.RecordCount,
                Pid = model.Processes.FirstOrDefault()?.Pid,
            };
        }
        catch (ImageFormatException exception)
        {
            return Invalid(path, length, exception.Problem, exception.Record, exception.Offset);
        }
        catch (FailedCheckpointException exception)
        {
            return Invalid(path, length, exception.Message, RecordType.Error, exception.Offset);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return Invalid(path, length, exception.Message, null, null);
        }
    }

    private static CkptImageValidation Invalid(string path, long length, string problem, RecordType? record, long? offset) => new()
    {
        ImagePath = path, IsValid = false, Length = length, Problem = problem, RecordType = record, Offset = offset,
    };
}
