using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace Ckpt.Benchmarks;

/// <summary>
/// Generated serializers against the hand-written BinaryPrimitives baseline, writing and
/// reading 100,000 VMA records with their page chunks. "Records" leaves the page contents
/// out (the serializers alone); "Pages" includes one 4 KiB page per VMA (the image as written).
/// </summary>
// The machine is shared (builds and tests of other engineers run beside it): the minimum of
// many iterations is the figure least disturbed by descheduling, so it is shown with the mean.
[MemoryDiagnoser]
[MinColumn, MedianColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class SerializerBenchmarks
{
    public const int VmaCount = 100_000;

    private VmaImageShape shape = null!;
    private byte[] image = null!;
    private readonly byte[] pageBuffer = new byte[VmaImageShape.PageSize];

    [Params("Records", "Pages")]
    public string Contents { get; set; } = "Records";

    [GlobalSetup]
    public void Setup()
    {
        shape = new VmaImageShape(VmaCount, Contents == "Pages");
        image = new byte[shape.ImageBytes];
        var baseline = new byte[shape.ImageBytes];
        // The comparison only means something if both produce the same bytes and read the same values.
        if (GeneratedVmaCodec.Write(shape, image) != image.Length || HandWrittenVmaCodec.Write(shape, baseline) != image.Length)
            throw new InvalidOperationException("a codec wrote the wrong number of bytes");
        if (!image.AsSpan().SequenceEqual(baseline))
            throw new InvalidOperationException("generated and hand-written images differ");
        if (GeneratedVmaCodec.Read(image, shape.ContentsIncluded, pageBuffer) != HandWrittenVmaCodec.Read(image, shape.ContentsIncluded, pageBuffer))
            throw new InvalidOperationException("generated and hand-written readers disagree");
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Write")]
    public int WriteHandWritten() => HandWrittenVmaCodec.Write(shape, image);

    [Benchmark, BenchmarkCategory("Write")]
    public int WriteGenerated() => GeneratedVmaCodec.Write(shape, image);

    [Benchmark(Baseline = true), BenchmarkCategory("Read")]
    public ulong ReadHandWritten() => HandWrittenVmaCodec.Read(image, shape.ContentsIncluded, pageBuffer);

    [Benchmark, BenchmarkCategory("Read")]
    public ulong ReadGenerated() => GeneratedVmaCodec.Read(image, shape.ContentsIncluded, pageBuffer);
}
