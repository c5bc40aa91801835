namespace CkptPS.Reading;

/// <summary>Short descriptions of an image for -PassThru and ShouldProcess messages.</summary>
internal static class ImageSummary
{
    public static CkptImageInfo Read(string image, bool killed)
    {
        var task = ImageObjects.Tasks(image, ImageFile.Read(image)).First();
        return new CkptImageInfo
        {
            ImagePath = image,
            Pid = task.Pid,
            Comm = task.Comm,
            Length = new FileInfo(image).Length,
            VmaCount = task.VmaCount,
            FileCount = task.FileCount,
            PagesSaved = task.PagesSaved,
            SavedBytes = task.SavedBytes,
            KernelRelease = task.KernelRelease,
            CheckpointTimeUtc = task.CheckpointTimeUtc,
            Killed = killed,
        };
    }

    /// <summary>"process sleep (1234)", or null when the image cannot be read that far.</summary>
    public static string? TryDescribe(string image)
    {
        try
        {
            var task = ImageObjects.Tasks(image, ImageFile.Read(image)).FirstOrDefault();
            return task is null ? null : $"process {task.Comm} ({task.Pid})";
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException
                                              or InvalidDataException or Ckpt.Image.FailedCheckpointException
                                              or Ckpt.Image.ImageFormatException)
        {
            return null;
        }
    }
}
