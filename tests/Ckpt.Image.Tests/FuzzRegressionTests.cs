using Ckpt.Image.Model;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Every input the fuzzer (tests/Ckpt.Fuzz, docs/fuzzing.md) found to crash the image reading or
/// restore planning, kept in FuzzRegressions/ once fixed: each must now be refused by the image model
/// with an ImageFormatException, within seconds and without an allocation sized by a lie.
/// </summary>
public class FuzzRegressionTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "FuzzRegressions");

    public static TheoryData<string> Inputs()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(Folder).Order()) data.Add(Path.GetFileName(file));
        return data;
    }

    [Fact]
    public void TheFolderHoldsTheKnownFindings() => Assert.NotEmpty(Inputs());

    [Theory]
    [MemberData(nameof(Inputs))]
    public async Task IsRefusedCleanly(string name)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(Folder, name));
        var reading = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                using var reader = new ImageReader(new MemoryStream(bytes), verifyChecksum: false);
                ImageModelReader.Read(reader);
                return (Error: (Exception?)null, Allocated: GC.GetAllocatedBytesForCurrentThread() - before);
            }
            catch (Exception e)
            {
                return (Error: e, Allocated: GC.GetAllocatedBytesForCurrentThread() - before);
            }
        });
        var (error, allocated) = await reading.WaitAsync(TimeSpan.FromSeconds(30)); // TimeoutException: a hang
        Assert.True(error is ImageFormatException, $"{name}: expected an ImageFormatException, got {error?.ToString() ?? "an accepted image"}");
        Assert.True(allocated < 64 << 20, $"{name}: reading allocated {allocated} bytes");
    }
}
