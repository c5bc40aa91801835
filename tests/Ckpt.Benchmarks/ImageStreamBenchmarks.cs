using BenchmarkDotNet.Attributes;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Benchmarks;

/// <summary>
/// The same 100,000 VMAs (one 4 KiB page each) through the real ImageWriter and ImageReader:
/// framing, blocks and the XXH3 checksum included (the writer synchronous, WriteBehind.None, so
/// the time is the serializing thread's). Allocations are per image (the writer's block, the
/// reader's scratch), not per record.
/// </summary>
[MemoryDiagnoser]
[MinColumn, MedianColumn]
public class ImageStreamBenchmarks
{
    private VmaImageShape shape = null!;
    private byte[] image = null!;
    private readonly ulong[] addresses = new ulong[1];
    private readonly byte[] pageBuffer = new byte[VmaImageShape.PageSize];

    [GlobalSetup]
    public void Setup()
    {
        shape = new VmaImageShape(SerializerBenchmarks.VmaCount, contentsIncluded: true);
        using var output = new MemoryStream();
        Write(output);
        image = output.ToArray();
        if (ReadVerifyingChecksum() != shape.Vmas.Length)
            throw new InvalidOperationException("the image did not read back");
    }

    [Benchmark]
    public long WriteToNonSeekableSink()
    {
        using var sink = new CountingSink();
        Write(sink);
        return sink.Written;
    }

    [Benchmark]
    public int ReadVerifyingChecksum() => Read(verifyChecksum: true, readContents: true);

    [Benchmark]
    public int ListSeekingPastPages() => Read(verifyChecksum: false, readContents: false);

    private void Write(Stream output)
    {
        using var writer = new ImageWriter(output, leaveOpen: true);
        writer.Write(new HeaderRecord
        {
            Magic = HeaderRecord.ExpectedMagic,
            FormatVersion = HeaderRecord.CurrentFormatVersion,
            LinuxCrNumbering = HeaderRecord.LinuxCrVersion,
            Arch = Architecture.X86_64,
            PageSize = VmaImageShape.PageSize,
        });
        foreach (ref readonly var vma in shape.Vmas.AsSpan())
        {
            writer.Write(vma);
            addresses[0] = vma.VmStart;
            writer.WritePageArray(addresses, shape.Page);
            writer.WritePageArrayEnd();
        }
        writer.WriteTail();
    }

    private int Read(bool verifyChecksum, bool readContents)
    {
        using var reader = new ImageReader(new MemoryStream(image, writable: false), verifyChecksum: verifyChecksum);
        reader.ReadHeader();
        var vmas = 0;
        while (reader.PeekType() == RecordType.Vma)
        {
            reader.Read<VmaRecord>();
            while (reader.Read<PageArrayRecord>().PageCount != 0)
            {
                if (!readContents) { reader.SkipPageContents(); continue; }
                reader.ReadPageAddresses(addresses);
                reader.ReadPageContents(pageBuffer);
            }
            vmas++;
        }
        reader.ReadTail();
        return vmas;
    }

    /// <summary>A write-only, non-seekable stream, like a pipe: counts bytes and drops them.</summary>
    private sealed class CountingSink : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public long Written { get; private set; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Written += count;
        public override void Write(ReadOnlySpan<byte> buffer) => Written += buffer.Length;
    }
}
