using System.Runtime.InteropServices;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Image.Model;

/// <summary>
/// A PAGE_ARRAY chunk whose page addresses the model did not read (<see cref="ImageReader.DeferAnonymousPageAddresses"/>):
/// its page count (checked against its VMA's count with the model), where its addresses and its
/// contents are, and the record's offset for messages. A lazy restore's page server reads the
/// addresses with <see cref="ReadAddresses"/>, which checks them as the model checks a chunk it reads,
/// before any of them is used: a 1 GiB image has 262,144 of them, which the process need not wait for.
/// </summary>
public sealed record DeferredPageChunk(int PageCount, long AddressesOffset, long ContentsOffset, long RecordOffset)
{
    /// <summary>The chunk's addresses, read from <paramref name="image"/> and checked against its VMA [vmStart, vmEnd).</summary>
    public ulong[] ReadAddresses(SafeFileHandle image, ulong vmStart, ulong vmEnd)
    {
        var addresses = new ulong[PageCount];
        Span<byte> bytes = MemoryMarshal.AsBytes(addresses.AsSpan());
        for (int done = 0; done < bytes.Length;)
        {
            int n = RandomAccess.Read(image, bytes[done..], AddressesOffset + done);
            if (n <= 0) throw new ImageFormatException(RecordType.PageArray, RecordOffset, $"the image ends inside the chunk's {PageCount} page addresses");
            done += n;
        }
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("images are little endian");
        // A restore refuses an image whose page size is not this system's before it reads any chunk.
        CheckAddresses(addresses, vmStart, vmEnd, (uint)Environment.SystemPageSize, [], RecordOffset);
        return addresses;
    }

    /// <summary>
    /// The rules for a chunk's addresses: aligned to <paramref name="pageSize"/>, inside the VMA, increasing, none also inherited
    /// from the parent (<paramref name="inherited"/>, increasing). The record at <paramref name="recordOffset"/> is named otherwise.
    /// </summary>
    public static void CheckAddresses(ReadOnlySpan<ulong> addresses, ulong vmStart, ulong vmEnd, uint pageSize, ulong[] inherited, long recordOffset)
    {
        ulong previous = 0;
        foreach (ulong address in addresses)
        {
            if (address < vmStart || address >= vmEnd || address % pageSize != 0 || (previous != 0 && address <= previous))
                throw new ImageFormatException(RecordType.PageArray, recordOffset, $"page 0x{address:x} is outside its VMA 0x{vmStart:x}-0x{vmEnd:x} or out of order");
            if (inherited.Length > 0 && Array.BinarySearch(inherited, address) >= 0)
                throw new ImageFormatException(RecordType.PageArray, recordOffset, $"page 0x{address:x} of VMA 0x{vmStart:x}-0x{vmEnd:x} is stored and inherited from the parent too");
            previous = address;
        }
    }
}
