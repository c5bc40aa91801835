using Ckpt.Image;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>Every damaged image either parses correctly or fails with ImageFormatException.</summary>
public class HostileImageTests
{
    [Fact]
    public void TruncationAtEveryOffsetIsAClearError()
    {
        var image = SampleImage.Build();
        for (var length = 0; length < image.Length; length++)
        {
            var truncated = image.AsSpan(0, length).ToArray();
            var error = Assert.Throws<ImageFormatException>(() => SampleImage.ReadAndCheck(truncated));
            Assert.InRange(error.Offset, 0, length);
        }
    }

    [Fact]
    public void BitFlipsAreDetectedOrHarmless()
    {
        var image = SampleImage.Build();
        var random = new Random(20091);
        for (var trial = 0; trial < 3000; trial++)
        {
            var damaged = (byte[])image.Clone();
            var bit = random.Next(damaged.Length * 8);
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            try
            {
                SampleImage.ReadAndCheck(damaged);
                Assert.Fail($"flipping bit {bit} went unnoticed");
            }
            catch (ImageFormatException error)
            {
                Assert.False(string.IsNullOrEmpty(error.Message));
            }
        }
    }
}
