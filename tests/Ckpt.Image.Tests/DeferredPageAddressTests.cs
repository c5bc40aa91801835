using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Page addresses a lazy restore leaves in the image (<see cref="ImageReader.DeferAnonymousPageAddresses"/>,
/// <see cref="DeferredPageChunk"/>): the model keeps the counts and offsets of a private anonymous VMA's
/// chunks, and reading them later gives the addresses the whole model reads, checked by the same rules.
/// </summary>
public sealed class DeferredPageAddressTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"deferred-{Guid.NewGuid():N}.img");

    public void Dispose() => File.Delete(_path);

    private static ImageModel ReadDeferred(byte[] image) =>
        ImageModelReader.Read(new ImageReader(new MemoryStream(image), verifyChecksum: false) { DeferAnonymousPageAddresses = true }); // as a restore reads it: the checksum is hashed apart

    private static VmaImage Anon(ImageModel model) => model.Processes[0].Memory.Vmas.Single(v => v.Record.VmaType == VmaType.Anon);

    [Fact]
    public void Deferred_chunks_read_later_give_the_addresses_and_contents_of_the_whole_model()
    {
        byte[] image = new V3Image().Build();
        File.WriteAllBytes(_path, image);
        VmaImage whole = Anon(V3Image.Read(image)), deferred = Anon(ReadDeferred(image));

        Assert.Empty(deferred.Chunks);
        Assert.Equal(whole.Chunks.Count, deferred.DeferredChunks.Count);
        Assert.Equal(whole.PagesSaved, deferred.PagesSaved);
        Assert.True(deferred.HasSavedPages);
        // Only private anonymous VMAs are deferred: the file mapping's page is read as before.
        Assert.Contains(ReadDeferred(image).Processes[0].Memory.Vmas, v => v.Record.VmaType == VmaType.File && v.Chunks.Count == 1);
        using SafeFileHandle handle = File.OpenHandle(_path);
        for (int i = 0; i < whole.Chunks.Count; i++)
        {
            DeferredPageChunk chunk = deferred.DeferredChunks[i];
            Assert.Equal(whole.Chunks[i].Addresses, chunk.ReadAddresses(handle, deferred.Record.VmStart, deferred.Record.VmEnd));
            Assert.Equal(whole.Chunks[i].ContentsOffset, chunk.ContentsOffset);
            Assert.Equal(V3Image.AnonChunks[i], chunk.ReadAddresses(handle, deferred.Record.VmStart, deferred.Record.VmEnd));
        }
    }

    [Theory]
    [InlineData(0x1001ul, "outside its VMA")]              // not page aligned
    [InlineData(0x7fff_0000_0000ul, "outside its VMA")]    // outside the VMA
    public void A_damaged_deferred_address_is_refused_naming_its_page_array(ulong damage, string expected)
    {
        byte[] image = new V3Image().Build();
        DeferredPageChunk chunk = Anon(ReadDeferred(image)).DeferredChunks[1];
        BitConverter.TryWriteBytes(image.AsSpan((int)chunk.AddressesOffset + 8), damage); // its second address
        File.WriteAllBytes(_path, image);
        VmaImage vma = Anon(ReadDeferred(image)); // the model does not read the addresses: it cannot see the damage

        using SafeFileHandle handle = File.OpenHandle(_path);
        var error = Assert.Throws<ImageFormatException>(() => vma.DeferredChunks[1].ReadAddresses(handle, vma.Record.VmStart, vma.Record.VmEnd));
        Assert.Equal(RecordType.PageArray, error.Record);
        Assert.Equal(chunk.RecordOffset, error.Offset);
        Assert.Contains(expected, error.Message);
        // The whole model refuses the same image at the same record.
        var whole = Assert.Throws<ImageFormatException>(() => V3Image.Read(image, verifyChecksum: false));
        Assert.Equal(chunk.RecordOffset, whole.Offset);
    }

    [Fact]
    public void Out_of_order_deferred_addresses_are_refused()
    {
        byte[] image = new V3Image().Build();
        DeferredPageChunk chunk = Anon(ReadDeferred(image)).DeferredChunks[1];
        BitConverter.TryWriteBytes(image.AsSpan((int)chunk.AddressesOffset + 8), V3Image.AnonChunks[1][0]); // twice the same page
        File.WriteAllBytes(_path, image);
        VmaImage vma = Anon(ReadDeferred(image));
        using SafeFileHandle handle = File.OpenHandle(_path);
        var error = Assert.Throws<ImageFormatException>(() => vma.DeferredChunks[1].ReadAddresses(handle, vma.Record.VmStart, vma.Record.VmEnd));
        Assert.Contains("out of order", error.Message);
    }

    [Fact]
    public void A_truncated_image_ends_inside_the_deferred_addresses()
    {
        byte[] image = new V3Image().Build();
        VmaImage vma = Anon(ReadDeferred(image));
        DeferredPageChunk chunk = vma.DeferredChunks[1];
        File.WriteAllBytes(_path, image.AsSpan(0, (int)chunk.AddressesOffset + 4).ToArray());
        using SafeFileHandle handle = File.OpenHandle(_path);
        var error = Assert.Throws<ImageFormatException>(() => chunk.ReadAddresses(handle, vma.Record.VmStart, vma.Record.VmEnd));
        Assert.Contains("ends inside", error.Message);
        Assert.Equal(chunk.RecordOffset, error.Offset);
    }
}
