using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>
/// Writes an image forward only, so any Stream works, pipes and stdout included. Small records
/// are gathered in a buffer; page contents go straight from the caller's span to the stream.
/// Every byte before the tail is fed to an XxHash64 that the tail record carries.
/// </summary>
public sealed class ImageWriter : IDisposable
{
    private const int BufferSize = 256 * 1024;
    private static readonly byte[] Padding = new byte[8];

    private readonly Stream stream;
    private readonly bool leaveOpen;
    private readonly byte[] buffer = new byte[BufferSize];
    private readonly XxHash64 checksum = new();
    private int buffered;
    private bool tailWritten;

    public ImageWriter(Stream stream, bool leaveOpen = false)
    {
        this.stream = stream;
        this.leaveOpen = leaveOpen;
    }

    /// <summary>Bytes of the image so far, buffered ones included.</summary>
    public long BytesWritten { get; private set; }

    public long RecordCount { get; private set; }

    public void Write<T>(in T record) where T : struct, IImageRecord<T>
    {
        if (record.TrailingLength != 0)
            throw new ArgumentException($"{typeof(T).Name} declares {record.TrailingLength} trailing bytes; pass them");
        WriteRecord(record, ReadOnlySpan<byte>.Empty, ReadOnlySpan<byte>.Empty);
    }

    /// <summary>Writes a record whose [TrailingBytes] field equals <paramref name="trailing"/>'s length.</summary>
    public void Write<T>(in T record, ReadOnlySpan<byte> trailing) where T : struct, IImageRecord<T>
    {
        if (record.TrailingLength != trailing.Length)
            throw new ArgumentException($"{typeof(T).Name} declares {record.TrailingLength} trailing bytes, got {trailing.Length}");
        WriteRecord(record, trailing, ReadOnlySpan<byte>.Empty);
    }

    public void WriteString(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Write(new StringRecord { Length = (uint)bytes.Length }, bytes);
    }

    /// <summary>One chunk of pages: their addresses, then their contents (page size each).</summary>
    public void WritePageArray(ReadOnlySpan<ulong> addresses, ReadOnlySpan<byte> contents)
    {
        if (addresses.Length == 0 || addresses.Length > PageArrayRecord.MaxPagesPerChunk)
            throw new ArgumentOutOfRangeException(nameof(addresses), $"a chunk holds 1 to {PageArrayRecord.MaxPagesPerChunk} pages");
        if (contents.Length % addresses.Length != 0)
            throw new ArgumentException("contents must be whole pages, one per address");
        var record = new PageArrayRecord { PageCount = (uint)addresses.Length };
        var addressBytes = MemoryMarshal.AsBytes(addresses);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("images are little endian");
        WriteRecord(record, addressBytes, contents);
    }

    /// <summary>The empty chunk that ends a VMA's pages.</summary>
    public void WritePageArrayEnd() => Write(new PageArrayRecord { PageCount = 0 });

    public void WriteError(int errno, string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        Write(new ErrorRecord { Errno = errno, MessageLength = (uint)bytes.Length }, bytes);
    }

    /// <summary>Ends the image with the checksum of everything before the tail, and flushes.</summary>
    public void WriteTail()
    {
        if (tailWritten) throw new InvalidOperationException("the tail is already written");
        var tail = new TailRecord
        {
            Magic = HeaderRecord.ExpectedMagic,
            Checksum = checksum.GetCurrentHashAsUInt64(),
            RecordCount = (ulong)RecordCount,
        };
        Span<byte> bytes = stackalloc byte[TailRecord.Size];
        tail.WriteTo(bytes, TailRecord.Size);
        Append(bytes, hash: false);
        tailWritten = true;
        Flush();
    }

    public void Flush()
    {
        FlushBuffer();
        stream.Flush();
    }

    public void Dispose()
    {
        FlushBuffer();
        if (!leaveOpen) stream.Dispose();
    }

    private void WriteRecord<T>(in T record, ReadOnlySpan<byte> trailing1, ReadOnlySpan<byte> trailing2)
        where T : struct, IImageRecord<T>
    {
        if (tailWritten) throw new InvalidOperationException("no record may follow the tail");
        var payload = (long)trailing1.Length + trailing2.Length;
        var length = T.FixedSize + payload;
        var padded = (length + 7) & ~7L;
        if (padded > ImageLimits.MaxRecordLength)
            throw new ArgumentException($"{typeof(T).Name} would be {padded} bytes, over the record limit");
        Span<byte> header = stackalloc byte[T.FixedSize];
        record.WriteTo(header, (uint)padded);
        Append(header, hash: true);
        Append(trailing1, hash: true);
        Append(trailing2, hash: true);
        Append(Padding.AsSpan(0, (int)(padded - length)), hash: true);
        RecordCount++;
    }

    private void Append(ReadOnlySpan<byte> bytes, bool hash)
    {
        if (bytes.IsEmpty) return;
        if (hash) checksum.Append(bytes);
        BytesWritten += bytes.Length;
        if (bytes.Length >= BufferSize / 2)
        {
            // Large page runs: write through, no copy.
            FlushBuffer();
            stream.Write(bytes);
            return;
        }
        if (buffered + bytes.Length > BufferSize) FlushBuffer();
        bytes.CopyTo(buffer.AsSpan(buffered));
        buffered += bytes.Length;
    }

    private void FlushBuffer()
    {
        if (buffered == 0) return;
        stream.Write(buffer, 0, buffered);
        buffered = 0;
    }
}
