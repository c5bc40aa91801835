using System.Diagnostics;

namespace Ckpt.Benchmarks;

/// <summary>
/// A cross-check for a loaded machine: runs the generated and the hand-written codec
/// alternately (ABBA order, so drift in background load hits both alike) and reports the
/// fastest run of each. BenchmarkDotNet runs one benchmark after another, so load that
/// changes between them shows up as a difference between codecs.
/// </summary>
public static class InterleavedCheck
{
    public static void Run(int rounds)
    {
        foreach (var contents in new[] { false, true })
        {
            var shape = new VmaImageShape(SerializerBenchmarks.VmaCount, contents);
            var image = new byte[shape.ImageBytes];
            var page = new byte[VmaImageShape.PageSize];
            var label = contents ? "Pages" : "Records";
            Report(label, "Write", rounds,
                () => HandWrittenVmaCodec.Write(shape, image),
                () => GeneratedVmaCodec.Write(shape, image));
            Report(label, "Read", rounds,
                () => HandWrittenVmaCodec.Read(image, contents, page),
                () => GeneratedVmaCodec.Read(image, contents, page));
        }
    }

    private static void Report<T>(string contents, string operation, int rounds, Func<T> handWritten, Func<T> generated)
    {
        var bestHand = double.MaxValue;
        var bestGenerated = double.MaxValue;
        for (var round = 0; round < rounds; round++)
        {
            var handFirst = round % 2 == 0;
            for (var i = 0; i < 2; i++)
            {
                if ((i == 0) == handFirst) bestHand = Math.Min(bestHand, Time(handWritten));
                else bestGenerated = Math.Min(bestGenerated, Time(generated));
            }
        }
        Console.WriteLine($"{operation,-6} {contents,-8} hand-written min {bestHand,9:F3} ms   generated min {bestGenerated,9:F3} ms   ratio {bestGenerated / bestHand:F3}");
    }

    private static double Time<T>(Func<T> action)
    {
        var start = Stopwatch.GetTimestamp();
        GC.KeepAlive(action());
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
