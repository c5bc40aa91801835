using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>
/// Writes an image forward only, so any Stream works, pipes and stdout included. Records are
/// gathered in blocks of about 4 MiB; page contents can be read straight into a block
/// (<see cref="BeginPageArray"/>), so a page is copied once on its way from the process to the
/// stream. Full blocks go to the stream, and into the tail's checksum (see
/// <see cref="ImageChecksum"/>), as <see cref="WriteBehind"/> says: at once, from a background
/// thread, or only after <see cref="StartWriteOut"/>.
/// </summary>
public sealed class ImageWriter : IDisposable
{
    private readonly Stream stream;
    private readonly bool leaveOpen;
    private readonly BlockOutput output;
    private byte[] block;
    private int used;
    private int openPageArrayLength;   // > 0 between BeginPageArray and EndPageArray
    private int openPageCount, openPageSize;
    private readonly ImageSigningKey? signingKey;
    private bool tailWritten, failed;

    /// <param name="signingKey">signs the image: an IMAGE_SIGNATURE record (HMAC-SHA256 of every byte
    /// before it) goes right before the tail</param>
    public ImageWriter(Stream stream, bool leaveOpen = false, WriteBehind writeBehind = WriteBehind.None, ImageSigningKey? signingKey = null)
    {
        this.stream = stream;
        this.leaveOpen = leaveOpen;
        this.signingKey = signingKey;
        output = new BlockOutput(stream, writeBehind, signingKey?.Key);
        block = output.Rent(BlockOutput.BlockSize);
    }

    /// <summary>Bytes of the image so far, those still in blocks included.</summary>
    public long BytesWritten { get; private set; }

    public long RecordCount { get; private set; }

    /// <summary>Prepares memory for about <paramref name="bytes"/> of image, see <see cref="WriteBehind.Deferred"/>.</summary>
    public void Preallocate(long bytes) => output.Preallocate(bytes);

    /// <summary>With <see cref="WriteBehind.Deferred"/>: start writing to the stream now.</summary>
    public void StartWriteOut() => output.StartWriteOut();

    public void Write<T>(in T record) where T : struct, IImageRecord<T>
    {
        if (record.TrailingLength != 0)
            throw new ArgumentException($"{typeof(T).Name} declares {record.TrailingLength} trailing bytes; pass them");
        WriteRecord(record, ReadOnlySpan<byte>.Empty);
    }

    /// <summary>Writes a record whose [TrailingBytes] field equals <paramref name="trailing"/>'s length.</summary>
    public void Write<T>(in T record, ReadOnlySpan<byte> trailing) where T : struct, IImageRecord<T>
    {
        if (record.TrailingLength != trailing.Length)
            throw new ArgumentException($"{typeof(T).Name} declares {record.TrailingLength} trailing bytes, got {trailing.Length}");
        WriteRecord(record, trailing);
    }

    public void WriteString(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Write(new StringRecord { Length = (uint)bytes.Length }, bytes);
    }

    /// <summary>One chunk of pages: their addresses, then their contents (page size each).</summary>
    public void WritePageArray(ReadOnlySpan<ulong> addresses, ReadOnlySpan<byte> contents)
    {
        if (addresses.Length == 0 || contents.Length % addresses.Length != 0)
            throw new ArgumentException("contents must be whole pages, one per address");
        contents.CopyTo(BeginPageArray(addresses, contents.Length / addresses.Length));
        EndPageArray();
    }

    /// <summary>
    /// Starts a chunk of pages and returns the space for their contents, for the caller to fill
    /// (a process_vm_readv straight into the image); <see cref="EndPageArray"/> completes the
    /// chunk. Any other write before that abandons it.
    /// </summary>
    public Span<byte> BeginPageArray(ReadOnlySpan<ulong> addresses, int pageSize)
    {
        if (addresses.Length == 0 || addresses.Length > PageArrayRecord.MaxPagesPerChunk)
            throw new ArgumentOutOfRangeException(nameof(addresses), $"a chunk holds 1 to {PageArrayRecord.MaxPagesPerChunk} pages");
        if (pageSize <= 0 || pageSize > ImageLimits.MaxPageSize || pageSize % 8 != 0)
            throw new ArgumentOutOfRangeException(nameof(pageSize), $"page size {pageSize} is not supported");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("images are little endian");
        ReadOnlySpan<byte> addressBytes = MemoryMarshal.AsBytes(addresses);
        int contentsLength = addresses.Length * pageSize;
        Span<byte> record = Reserve<PageArrayRecord>(new PageArrayRecord { PageCount = (uint)addresses.Length },
            addressBytes.Length + contentsLength, out int padded);
        addressBytes.CopyTo(record[PageArrayRecord.Size..]);
        (openPageArrayLength, openPageCount, openPageSize) = (padded, addresses.Length, pageSize);
        return record.Slice(PageArrayRecord.Size + addressBytes.Length, contentsLength);
    }

    /// <summary>
    /// Completes the chunk <see cref="BeginPageArray"/> opened. With <paramref name="dropZeroPages"/>
    /// pages that hold only zeros are taken out of it first (and a chunk left empty is not written
    /// at all). Returns the number of pages the chunk holds.
    /// </summary>
    public int EndPageArray(bool dropZeroPages = false)
    {
        if (openPageArrayLength == 0) throw new InvalidOperationException("no page array is open");
        int kept = dropZeroPages ? CompactOutZeroPages() : openPageCount;
        if (kept == openPageCount)
        {
            Commit(openPageArrayLength);
            return kept;
        }
        openPageArrayLength = 0;
        if (kept == 0) return 0;
        int length = PageArrayRecord.Size + kept * (sizeof(ulong) + openPageSize);
        int padded = (length + 7) & ~7;
        Span<byte> record = block.AsSpan(used, padded);
        new PageArrayRecord { PageCount = (uint)kept }.WriteTo(record, (uint)padded);
        record[length..].Clear();
        Commit(padded);
        return kept;
    }

    // Moves the pages with a non-zero byte (and their addresses) to the front of the open chunk,
    // keeping their order, then the contents down next to the shortened address list.
    private int CompactOutZeroPages()
    {
        Span<byte> record = block.AsSpan(used, openPageArrayLength);
        Span<ulong> addresses = MemoryMarshal.Cast<byte, ulong>(record.Slice(PageArrayRecord.Size, openPageCount * sizeof(ulong)));
        Span<byte> contents = record.Slice(PageArrayRecord.Size + openPageCount * sizeof(ulong), openPageCount * openPageSize);
        int kept = 0;
        for (int i = 0; i < openPageCount; i++)
        {
            Span<byte> page = contents.Slice(i * openPageSize, openPageSize);
            if (!page.ContainsAnyExcept((byte)0)) continue; // a data page stops this scan at its first non-zero byte
            if (kept != i)
            {
                addresses[kept] = addresses[i];
                page.CopyTo(contents.Slice(kept * openPageSize, openPageSize));
            }
            kept++;
        }
        if (kept != openPageCount)
            contents[..(kept * openPageSize)].CopyTo(record[(PageArrayRecord.Size + kept * sizeof(ulong))..]);
        return kept;
    }

    /// <summary>The empty chunk that ends a VMA's pages.</summary>
    public void WritePageArrayEnd() => Write(new PageArrayRecord { PageCount = 0 });

    public void WriteError(int errno, string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        failed = true; // the image of a failed checkpoint is not signed: ERROR is followed by the tail
        Write(new ErrorRecord { Errno = errno, MessageLength = (uint)bytes.Length }, bytes);
    }

    /// <summary>
    /// Waits until every record is on the stream, then ends the image with the checksum of
    /// everything before the tail, and flushes the stream.
    /// </summary>
    public void WriteTail()
    {
        if (tailWritten) throw new InvalidOperationException("the tail is already written");
        SubmitBlock(last: true);
        ulong checksum = output.Drain();
        if (signingKey is not null && !failed)
        {
            Span<byte> signature = stackalloc byte[ImageSignatureRecord.Size];
            signingKey.Signature(output.Mac()!).WriteTo(signature, ImageSignatureRecord.Size);
            output.WriteUnsigned(signature);
            checksum = output.Drain();
            BytesWritten += signature.Length;
            RecordCount++;
        }
        var tail = new TailRecord
        {
            Magic = HeaderRecord.ExpectedMagic,
            Checksum = checksum,
            RecordCount = (ulong)RecordCount,
        };
        Span<byte> bytes = stackalloc byte[TailRecord.Size];
        tail.WriteTo(bytes, TailRecord.Size);
        stream.Write(bytes);
        BytesWritten += bytes.Length;
        tailWritten = true;
        stream.Flush();
    }

    /// <summary>
    /// An image without its tail is incomplete anyway, but what was written still goes to the
    /// stream (for None and Pipelined), so that a reader can name where it ends.
    /// </summary>
    public void Dispose()
    {
        try
        {
            if (!tailWritten)
            {
                SubmitBlock(last: true);
                output.Drain();
            }
        }
        finally
        {
            output.Dispose();
            if (!leaveOpen) stream.Dispose();
        }
    }

    private void WriteRecord<T>(in T record, ReadOnlySpan<byte> trailing) where T : struct, IImageRecord<T>
    {
        Span<byte> space = Reserve(record, trailing.Length, out int padded);
        trailing.CopyTo(space[T.FixedSize..]);
        Commit(padded);
    }

    // Room for a whole record in the current block, its header and padding written.
    private Span<byte> Reserve<T>(scoped in T record, int trailingLength, out int padded) where T : struct, IImageRecord<T>
    {
        if (tailWritten) throw new InvalidOperationException("no record may follow the tail");
        long length = T.FixedSize + (long)trailingLength;
        long paddedLength = (length + 7) & ~7L;
        if (paddedLength > ImageLimits.MaxRecordLength)
            throw new ArgumentException($"{typeof(T).Name} would be {paddedLength} bytes, over the record limit");
        padded = (int)paddedLength;
        openPageArrayLength = 0;
        if (used + padded > block.Length)
        {
            SubmitBlock();
            if (block.Length < padded) block = output.Rent(padded);
        }
        Span<byte> space = block.AsSpan(used, padded);
        record.WriteTo(space, (uint)padded);
        space[(int)length..].Clear();
        return space;
    }

    private void Commit(int padded)
    {
        used += padded;
        BytesWritten += padded;
        RecordCount++;
        openPageArrayLength = 0;
    }

    // After the last block nothing is written into a new one: no block is rented for it.
    private void SubmitBlock(bool last = false)
    {
        if (used == 0) return;
        output.Submit(block, used);
        block = last ? [] : output.Rent(BlockOutput.BlockSize);
        used = 0;
    }
}
