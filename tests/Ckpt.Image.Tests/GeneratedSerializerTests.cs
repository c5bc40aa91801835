using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>The generated ReadFrom/WriteTo of the real records, outside the reader.</summary>
public class GeneratedSerializerTests
{
    [Fact]
    public void ReadFromRejectsARecordOfAnotherType()
    {
        var bytes = new byte[VmaRecord.Size];
        new PageArrayRecord { PageCount = 3 }.WriteTo(bytes, PageArrayRecord.Size);
        var error = Assert.Throws<ArgumentException>(() => VmaRecord.ReadFrom(bytes));
        Assert.Contains("403", error.Message);
    }

    [Fact]
    public void ShortSpansAreRejectedBeforeAnyAccess()
    {
        var bytes = new byte[VmaRecord.Size - 1];
        Assert.Throws<ArgumentException>(() => new VmaRecord().WriteTo(bytes, VmaRecord.Size));
        Assert.Throws<ArgumentException>(() => VmaRecord.ReadFrom(bytes));
    }

    [Fact]
    public unsafe void FixedBuffersAndPaddingRoundTrip()
    {
        var mm = new MmRecord { VmaCount = 7, AuxvWords = 2 };
        mm.SavedAuxv[0] = 6;
        mm.SavedAuxv[63] = 0xFEDC_BA98_7654_3210;
        var bytes = new byte[MmRecord.Size];
        Array.Fill(bytes, (byte)0xEE); // padding must come out zeroed, whatever was there
        mm.WriteTo(bytes, MmRecord.Size);
        var back = MmRecord.ReadFrom(bytes);
        Assert.Equal(7, back.VmaCount);
        Assert.Equal(6ul, back.SavedAuxv[0]);
        Assert.Equal(0xFEDC_BA98_7654_3210ul, back.SavedAuxv[63]);
        Assert.Equal(0xFEDC_BA98_7654_3210ul, BitConverter.ToUInt64(bytes, MmRecord.Size - 8));

        var header = new HeaderRecord { PageSize = 4096 };
        var headerBytes = new byte[HeaderRecord.Size];
        Array.Fill(headerBytes, (byte)0xEE);
        header.WriteTo(headerBytes, HeaderRecord.Size);
        Assert.DoesNotContain((byte)0xEE, headerBytes);
    }
}
