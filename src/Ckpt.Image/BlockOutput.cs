using System.Collections.Concurrent;

namespace Ckpt.Image;

/// <summary>
/// The output side of an <see cref="ImageWriter"/>: takes filled blocks in image order, hashes
/// them into the tail's checksum and writes them to the stream, on the caller's thread or on a
/// background one (see <see cref="WriteBehind"/>). Written blocks are recycled, so a pipelined
/// writer lives on four blocks whatever the image size.
/// </summary>
internal sealed class BlockOutput : IDisposable
{
    /// <summary>Holds a whole chunk of 1024 4-KiB pages with its addresses and small records around it.</summary>
    public const int BlockSize = (4 << 20) + (64 << 10);

    private const int PipelinedQueueLength = 2;
    private const int PageSize = 4096;

    private readonly Stream stream;
    private readonly WriteBehind mode;
    private readonly System.IO.Hashing.XxHash3 checksum = ImageChecksum.Create();
    private readonly System.Security.Cryptography.IncrementalHash? mac;
    private readonly ConcurrentQueue<byte[]> free = new();
    private readonly BlockingCollection<(byte[] Block, int Length)> queue;
    private Thread? worker;
    private volatile Exception? failure;
    private volatile bool discard;

    /// <param name="signingKey">with a key, every block also goes into an HMAC-SHA256 (<see cref="Mac"/>)</param>
    public BlockOutput(Stream stream, WriteBehind mode, byte[]? signingKey = null)
    {
        this.stream = stream;
        this.mode = mode;
        if (signingKey is not null)
            mac = System.Security.Cryptography.IncrementalHash.CreateHMAC(System.Security.Cryptography.HashAlgorithmName.SHA256, signingKey);
        queue = mode == WriteBehind.Pipelined ? new(PipelinedQueueLength) : new();
        if (mode == WriteBehind.Pipelined) StartWorker();
    }

    /// <summary>A block to fill: a recycled one when it is large enough, else a new one.</summary>
    public byte[] Rent(int minimumLength)
    {
        if (minimumLength > BlockSize) return GC.AllocateUninitializedArray<byte>(minimumLength);
        return free.TryDequeue(out byte[]? block) ? block : GC.AllocateUninitializedArray<byte>(BlockSize);
    }

    /// <summary>
    /// Allocates blocks for about <paramref name="bytes"/> of image now and touches every page of
    /// them, so that their page faults (expensive in a VM) happen before the caller's hurry.
    /// </summary>
    public void Preallocate(long bytes)
    {
        for (long prepared = 0; prepared < bytes; prepared += BlockSize)
        {
            byte[] block = GC.AllocateUninitializedArray<byte>(BlockSize);
            for (int page = 0; page < block.Length; page += PageSize) block[page] = 0;
            free.Enqueue(block);
        }
    }

    /// <summary>Hands over a filled block; with Pipelined this waits while two blocks are queued.</summary>
    public void Submit(byte[] block, int length)
    {
        ThrowIfFailed();
        if (mode == WriteBehind.None)
        {
            WriteBlock(block, length);
            Recycle(block);
            return;
        }
        queue.Add((block, length));
    }

    /// <summary>Deferred: starts writing the blocks kept so far, and those submitted from now on.</summary>
    public void StartWriteOut()
    {
        if (worker is null && mode != WriteBehind.None) StartWorker();
    }

    /// <summary>Waits until every submitted block is written; returns the checksum of them all.</summary>
    public ulong Drain()
    {
        if (mode != WriteBehind.None)
        {
            StartWriteOut();
            if (!queue.IsAddingCompleted) queue.CompleteAdding();
            worker!.Join();
        }
        ThrowIfFailed();
        return checksum.GetCurrentHashAsUInt64();
    }

    /// <summary>After <see cref="Drain"/>: the HMAC of every block written, or null without a signing key.</summary>
    public byte[]? Mac() => mac?.GetHashAndReset();

    /// <summary>After <see cref="Drain"/>: bytes that go to the stream and the checksum, not into the MAC (the signature record).</summary>
    public void WriteUnsigned(ReadOnlySpan<byte> bytes)
    {
        checksum.Append(bytes);
        stream.Write(bytes);
    }

    /// <summary>Stops without writing what is still queued (the image is being abandoned).</summary>
    public void Dispose()
    {
        discard = true;
        if (!queue.IsAddingCompleted) queue.CompleteAdding();
        worker?.Join();
        queue.Dispose();
        mac?.Dispose();
    }

    private void StartWorker()
    {
        worker = new Thread(WriteQueuedBlocks) { Name = "ckpt-image-writer", IsBackground = true };
        worker.Start();
    }

    // After a failure the worker keeps taking blocks (and drops them) so that a producer
    // waiting on a full queue is released and sees the failure on its next Submit.
    private void WriteQueuedBlocks()
    {
        foreach (var (block, length) in queue.GetConsumingEnumerable())
        {
            if (failure is null && !discard)
            {
                try { WriteBlock(block, length); }
                catch (Exception e) { failure = e; }
            }
            Recycle(block);
        }
    }

    private void WriteBlock(byte[] block, int length)
    {
        checksum.Append(block.AsSpan(0, length));
        mac?.AppendData(block, 0, length);
        stream.Write(block, 0, length);
    }

    private void Recycle(byte[] block)
    {
        if (block.Length == BlockSize) free.Enqueue(block);
    }

    private void ThrowIfFailed()
    {
        if (failure is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }
}
