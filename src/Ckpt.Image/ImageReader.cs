using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>
/// Reads an image forward only. Every header is checked (known type, length a multiple of 8,
/// within the limits, large enough for the record's fixed part and its declared trailing bytes)
/// before any byte of the record is trusted, and every failure is an ImageFormatException
/// naming the record and its offset. Trailing bytes a caller does not read are skipped: by
/// seeking when the stream can and checksums are not wanted, otherwise by reading them.
/// </summary>
public sealed class ImageReader : IDisposable
{
    private const int HeaderSize = 8;
    private const int ScratchSize = 64 * 1024;
    private const int SkipBufferSize = 1 << 20;

    private readonly Stream stream;
    private readonly bool leaveOpen;
    private readonly bool verifyChecksum;
    private readonly XxHash3 checksum = ImageChecksum.Create();
    private readonly byte[] scratch = new byte[ScratchSize];
    private byte[]? skipBuffer;
    private RecordType? peekedType;
    private uint peekedLength;
    private long pendingTrailing;   // unread trailing bytes of the current record (padding included)
    private bool checksumComplete = true;
    private bool tailRead;
    private long? streamLength; // an image does not grow while it is read: one fstat, not one per skipped chunk

    /// <param name="verifyChecksum">
    /// Hash every byte so that ReadTail can check the checksum; false lets skipped page
    /// contents be seeked over on seekable streams (fast listing).
    /// </param>
    public ImageReader(Stream stream, bool leaveOpen = false, bool verifyChecksum = true)
    {
        this.stream = stream;
        this.leaveOpen = leaveOpen;
        this.verifyChecksum = verifyChecksum;
    }

    /// <summary>
    /// Page addresses of private anonymous VMAs are not read into the model: their chunks are
    /// <see cref="Model.DeferredPageChunk"/>s, which the consumer reads and checks itself before using
    /// any address (a lazy restore's page server, after the process runs: docs/RESTORE.md).
    /// </summary>
    public bool DeferAnonymousPageAddresses { get; init; }

    /// <summary>Byte offset of the next unread byte.</summary>
    public long Position { get; private set; }

    /// <summary>Offset of the record most recently peeked or read.</summary>
    public long CurrentRecordOffset { get; private set; }

    /// <summary>Length of the record most recently peeked or read, header and padding included.</summary>
    public uint CurrentRecordLength => peekedLength;

    public long RecordCount { get; private set; }

    /// <summary>Page size from the header, once read.</summary>
    public uint PageSize { get; private set; }

    /// <summary>The type of the next record, or null at the end of the stream.</summary>
    public RecordType? PeekType()
    {
        if (peekedType is { } type) return type;
        SkipPendingTrailing();
        if (tailRead) return null;
        CurrentRecordOffset = Position;
        Span<byte> header = stackalloc byte[HeaderSize];
        var got = ReadAtMost(header);
        if (got == 0) return null;
        if (got < HeaderSize) throw Error(null, "truncated record header");
        var rawType = BinaryPrimitives.ReadUInt32LittleEndian(header);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        var recordType = (RecordType)rawType;
        if (!Enum.IsDefined(recordType)) throw Error(recordType, $"unknown record type {rawType}");
        if (length < HeaderSize || length % 8 != 0 || length > ImageLimits.MaxRecordLength)
            throw Error(recordType, $"bad record length {length}");
        if (recordType != RecordType.Tail) Hash(header);
        peekedType = recordType;
        peekedLength = length;
        return recordType;
    }

    /// <summary>Reads the next record, which must be a <typeparamref name="T"/>.</summary>
    public T Read<T>() where T : struct, IImageRecord<T>
    {
        var type = PeekType() ?? throw Error(T.RecordType, "image ends before this record");
        if (type != T.RecordType)
            throw Error(type, $"expected a {ImageFormatException.RecordName(T.RecordType)} record here");
        if (peekedLength < T.FixedSize)
            throw Error(type, $"record length {peekedLength} is shorter than its fixed size {T.FixedSize}");
        var fixedPart = scratch.AsSpan(0, T.FixedSize);
        fixedPart[..HeaderSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(fixedPart, (uint)type);
        BinaryPrimitives.WriteUInt32LittleEndian(fixedPart[4..], peekedLength);
        ReadExactly(fixedPart[HeaderSize..], type);
        if (type != RecordType.Tail) Hash(fixedPart[HeaderSize..]);
        var record = T.ReadFrom(fixedPart);
        var expectedTrailing = type == RecordType.PageArray
            ? PageArrayBytes(Unsafe.As<T, PageArrayRecord>(ref record))
            : record.TrailingLength;
        var expectedLength = ((long)T.FixedSize + expectedTrailing + 7) & ~7L;
        if (expectedLength != peekedLength)
            throw Error(type, $"record length {peekedLength} does not match its contents ({expectedLength} bytes)");
        pendingTrailing = peekedLength - T.FixedSize;
        TrailingLength = expectedTrailing;
        peekedType = null;
        RecordCount++;
        return record;
    }

    /// <summary>
    /// Passes over the next record without interpreting its payload; for callers that look for some
    /// records only. Its length is validated as Read would: against RecordCatalog's fixed size and,
    /// for a record with trailing bytes, its trailing length field (a page array: its page count).
    /// A type with no record struct (a number CkptPS never writes) is refused. Its bytes still
    /// count in the checksum.
    /// </summary>
    public void SkipRecord()
    {
        var type = PeekType() ?? throw Error(null, "image ends before the record to skip");
        if (type == RecordType.Tail) throw Error(type, "the tail is read with ReadTail, not skipped");
        if (type == RecordType.PageArray)
        {
            Read<PageArrayRecord>(); // its contents stay pending and are skipped with the record
            return;
        }
        if (!RecordCatalog.TryGet(type, out var record))
            throw Error(type, $"record type {(uint)type} has no record struct: a record CkptPS never writes");
        if (peekedLength < record.FixedSize)
            throw Error(type, $"record length {peekedLength} is shorter than the fixed size {record.FixedSize} of a {record.Name} record");
        var consumed = HeaderSize;
        if (record.TrailingLengthOffset is { } lengthAt)
        {
            var fixedPayload = scratch.AsSpan(HeaderSize, record.FixedSize - HeaderSize);
            ReadExactly(fixedPayload, type);
            Hash(fixedPayload);
            consumed = record.FixedSize;
            var trailing = BinaryPrimitives.ReadUInt32LittleEndian(scratch.AsSpan(lengthAt));
            var expectedLength = ((long)record.FixedSize + trailing + 7) & ~7L;
            if (expectedLength != peekedLength)
                throw Error(type, $"record length {peekedLength} does not match the {record.Name} record's trailing length {trailing} ({expectedLength} bytes)");
        }
        else if (peekedLength != record.FixedSize)
            throw Error(type, $"record length {peekedLength} is not the fixed size {record.FixedSize} of a {record.Name} record, which has no trailing bytes");
        pendingTrailing = peekedLength - consumed;
        TrailingLength = 0;
        peekedType = null;
        RecordCount++;
    }

    /// <summary>
    /// When the next record is an ERROR (the checkpoint that wrote the image failed there), reads
    /// it and throws a <see cref="FailedCheckpointException"/> with the checkpoint's own reason.
    /// </summary>
    public void ThrowIfFailedCheckpoint()
    {
        if (PeekType() != RecordType.Error) return;
        var error = Read<ErrorRecord>();
        long offset = CurrentRecordOffset;
        throw new FailedCheckpointException(ReadTrailingString(), error.Errno, offset);
    }

    /// <summary>Declared trailing bytes of the record just read (without padding).</summary>
    public long TrailingLength { get; private set; }

    /// <summary>Reads the next <paramref name="destination"/>.Length trailing bytes of the current record.</summary>
    public void ReadTrailing(Span<byte> destination)
    {
        if (destination.Length > pendingTrailing)
            throw Error(null, $"asked for {destination.Length} trailing bytes, the record has {pendingTrailing} left");
        ReadExactly(destination, null);
        Hash(destination);
        pendingTrailing -= destination.Length;
    }

    /// <summary>Skips <paramref name="count"/> trailing bytes of the current record (page contents).</summary>
    public void SkipTrailing(long count)
    {
        if (count > pendingTrailing)
            throw Error(null, $"asked to skip {count} trailing bytes, the record has {pendingTrailing} left");
        Skip(count);
        pendingTrailing -= count;
    }

    /// <summary>The current record's trailing bytes as a UTF-8 string.</summary>
    public string ReadTrailingString()
    {
        if (TrailingLength > ImageLimits.MaxStringLength)
            throw Error(null, $"string of {TrailingLength} bytes is over the limit");
        var bytes = new byte[TrailingLength];
        ReadTrailing(bytes);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The current record's trailing bytes, for bounded buffers (xstate, groups).</summary>
    public byte[] ReadTrailingBytes()
    {
        if (TrailingLength > ImageLimits.MaxBufferLength)
            throw Error(null, $"buffer of {TrailingLength} bytes is over the limit");
        var bytes = new byte[TrailingLength];
        ReadTrailing(bytes);
        return bytes;
    }

    public string ReadString()
    {
        Read<StringRecord>();
        return ReadTrailingString();
    }

    public HeaderRecord ReadHeader()
    {
        if (RecordCount != 0 || Position != 0) throw Error(null, "the header must be the first record");
        ThrowIfFailedCheckpoint(); // a checkpoint refused before its header wrote only ERROR and TAIL
        var header = Read<HeaderRecord>();
        if (header.Magic != HeaderRecord.ExpectedMagic) throw Error(RecordType.Header, "bad magic: not a CkptPS image");
        if (header.FormatVersion != HeaderRecord.CurrentFormatVersion)
            throw Error(RecordType.Header, $"format version {header.FormatVersion} is not supported: this reader reads version {HeaderRecord.CurrentFormatVersion} " +
                (header.FormatVersion < HeaderRecord.CurrentFormatVersion
                    ? "(checkpoint the process again with this version)"
                    : "(read the image with the newer version that wrote it)"));
        if (header.PageSize < 4096 || header.PageSize > ImageLimits.MaxPageSize || (header.PageSize & (header.PageSize - 1)) != 0)
            throw Error(RecordType.Header, $"bad page size {header.PageSize}");
        PageSize = header.PageSize;
        return header;
    }

    /// <summary>Reads a page chunk's addresses; the contents stay pending (read or skip them next).</summary>
    public int ReadPageAddresses(Span<ulong> addresses)
    {
        var count = (int)(TrailingLength / (8 + PageSize));
        if (addresses.Length < count) throw new ArgumentException("address buffer too small");
        var bytes = MemoryMarshal.AsBytes(addresses[..count]);
        ReadTrailing(bytes);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("images are little endian");
        return count;
    }

    public void ReadPageContents(Span<byte> contents) => ReadTrailing(contents);

    public void SkipPageContents() => SkipTrailing(pendingTrailing);

    /// <summary>Reads the tail, checks the checksum and that nothing follows it.</summary>
    public TailRecord ReadTail()
    {
        // Peek first: it skips (and hashes) unread trailing bytes of the last record, which the
        // checksum covers; the tail's own header is not hashed.
        var offset = PeekType() is null ? Position : CurrentRecordOffset;
        var hash = checksum.GetCurrentHashAsUInt64();
        var tail = Read<TailRecord>();
        if (tail.Magic != HeaderRecord.ExpectedMagic) throw Error(RecordType.Tail, "bad tail magic", offset);
        if ((long)tail.RecordCount != RecordCount - 1)
            throw Error(RecordType.Tail, $"tail counts {tail.RecordCount} records, the image has {RecordCount - 1}", offset);
        if (checksumComplete && verifyChecksum && tail.Checksum != hash)
            throw Error(RecordType.Tail, $"checksum mismatch: image says {tail.Checksum:x16}, contents hash to {hash:x16}", offset);
        tailRead = true;
        Span<byte> extra = stackalloc byte[1];
        if (ReadAtMost(extra) != 0) throw Error(null, "bytes follow the tail");
        return tail;
    }

    /// <summary>True when ReadTail compared the checksum (every byte was hashed).</summary>
    public bool ChecksumVerified => tailRead && checksumComplete && verifyChecksum;

    public void Dispose()
    {
        if (!leaveOpen) stream.Dispose();
    }

    private long PageArrayBytes(in PageArrayRecord record)
    {
        if (PageSize == 0) throw Error(RecordType.PageArray, "page array before the header");
        if (record.PageCount > PageArrayRecord.MaxPagesPerChunk)
            throw Error(RecordType.PageArray, $"page count {record.PageCount} is over the chunk limit {PageArrayRecord.MaxPagesPerChunk}");
        return record.PageCount * (8L + PageSize);
    }

    private void SkipPendingTrailing()
    {
        if (pendingTrailing == 0) return;
        Skip(pendingTrailing);
        pendingTrailing = 0;
    }

    private void Skip(long count)
    {
        if (count == 0) return;
        if (!verifyChecksum && stream.CanSeek)
        {
            if (Position + count > (streamLength ??= stream.Length)) throw Error(null, "truncated: record runs past the end of the image");
            stream.Seek(count, SeekOrigin.Current);
            Position += count;
            checksumComplete = false;
            return;
        }
        // Page contents being hashed: large reads, so a 1 GiB image takes 1024 reads, not 16384.
        byte[] buffer = count > ScratchSize ? skipBuffer ??= new byte[SkipBufferSize] : scratch;
        while (count > 0)
        {
            var chunk = buffer.AsSpan(0, (int)Math.Min(count, buffer.Length));
            ReadExactly(chunk, null);
            Hash(chunk);
            count -= chunk.Length;
        }
    }

    private void Hash(ReadOnlySpan<byte> bytes)
    {
        if (verifyChecksum) checksum.Append(bytes);
    }

    private void ReadExactly(Span<byte> destination, RecordType? type)
    {
        if (ReadAtMost(destination) != destination.Length)
            throw Error(type ?? peekedType, "truncated: the image ends inside this record");
    }

    private int ReadAtMost(Span<byte> destination)
    {
        var total = 0;
        while (total < destination.Length)
        {
            var got = stream.Read(destination[total..]);
            if (got == 0) break;
            total += got;
        }
        Position += total;
        return total;
    }

    private ImageFormatException Error(RecordType? type, string problem, long? offset = null) =>
        new(type ?? peekedType, offset ?? CurrentRecordOffset, problem);
}
