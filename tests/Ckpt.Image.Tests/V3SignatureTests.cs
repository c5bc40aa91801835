using System.Buffers.Binary;
using System.Security.Cryptography;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// IMAGE_SIGNATURE (docs/SECURITY.md): written right before the tail with a key, read into the
/// model, verified only with the same key over unchanged bytes; an unknown algorithm is refused.
/// </summary>
public sealed class V3SignatureTests : IDisposable
{
    private readonly ImageSigningKey key = new(RandomNumberGenerator.GetBytes(ImageSigningKey.KeyLength));
    private readonly string file = Path.GetTempFileName();

    public void Dispose() => File.Delete(file);

    private string? VerifyAsFile(byte[] image, ImageSigningKey with)
    {
        File.WriteAllBytes(file, image);
        using var handle = File.OpenHandle(file);
        return with.Verify(handle, V3Image.Read(image));
    }

    private static void RecomputeTail(byte[] image)
    {
        int tail = image.Length - TailRecord.Size;
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(tail + 16), ImageChecksum.Of(image.AsSpan(0, tail)));
    }

    [Fact]
    public void SignedImageRoundTripsAndVerifiesWithItsKeyOnly()
    {
        byte[] image = new V3Image { SigningKey = key }.Build();
        ImageModel model = V3Image.Read(image); // the tail's checksum covers the signature too
        Assert.NotNull(model.Signature);
        Assert.Equal(key.Id, model.Signature!.Value.KeyId);
        Assert.Equal(ImageSignatureRecord.HmacSha256, model.Signature.Value.Algorithm);
        Assert.Equal(model.TailOffset - ImageSignatureRecord.Size, model.SignatureOffset);
        Assert.Null(VerifyAsFile(image, key));

        var other = new ImageSigningKey(RandomNumberGenerator.GetBytes(ImageSigningKey.KeyLength));
        Assert.Contains("signed with another key", VerifyAsFile(image, other));
    }

    [Fact]
    public void AnyChangedByteBreaksTheSignatureEvenWithTheChecksumRecomputed()
    {
        byte[] image = new V3Image { SigningKey = key }.Build();
        ImageModel model = V3Image.Read(image);
        long contents = model.Processes[0].Memory.Vmas.SelectMany(v => v.Chunks).First().ContentsOffset;
        image[contents] ^= 1; // one bit of a page, as an attacker would patch code
        RecomputeTail(image);
        Assert.Contains("does not match the image's contents", VerifyAsFile(image, key));
    }

    [Fact]
    public void UnsignedImageHasNoSignature()
    {
        byte[] image = new V3Image().Build();
        Assert.Null(V3Image.Read(image).Signature);
        Assert.Equal("the image is not signed", VerifyAsFile(image, key));
    }

    [Fact]
    public void UnknownSignatureAlgorithmIsRefusedNamingTheRecord()
    {
        byte[] image = new V3Image { SigningKey = key }.Build();
        int signature = image.Length - TailRecord.Size - ImageSignatureRecord.Size;
        Assert.Equal((uint)RecordType.ImageSignature, BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(signature)));
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(signature + 8), 7); // Algorithm, after the 8-byte header
        RecomputeTail(image);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.ImageSignature, error.Record);
        Assert.Contains("signature algorithm 7 is unknown", error.Message);
    }
}
