using System.Buffers.Binary;
using System.Security.Cryptography;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Image;

/// <summary>
/// A host's image key (32 secret bytes) and what it does: sign an image at checkpoint (HMAC-SHA256
/// of every byte before the IMAGE_SIGNATURE record) and verify a signature at restore. Where the
/// key lives and who may read it is the engine's business (Ckpt.Engine.Security.ImageKeyFile).
/// </summary>
public sealed class ImageSigningKey
{
    public const int KeyLength = 32;

    public ImageSigningKey(byte[] key)
    {
        if (key.Length != KeyLength) throw new ArgumentException($"an image key is {KeyLength} bytes, not {key.Length}");
        Key = key;
        Id = BinaryPrimitives.ReadUInt64LittleEndian(SHA256.HashData(key));
    }

    internal byte[] Key { get; }

    /// <summary>Names the key in a signature (a hash of it: the key itself stays secret).</summary>
    public ulong Id { get; }

    internal unsafe ImageSignatureRecord Signature(byte[] mac)
    {
        var record = new ImageSignatureRecord { Algorithm = ImageSignatureRecord.HmacSha256, KeyId = Id };
        for (int i = 0; i < ImageSignatureRecord.MacLength; i++) record.Mac[i] = mac[i];
        return record;
    }

    /// <summary>
    /// Whether the image's signature was made with this key over the image's bytes as they are in
    /// <paramref name="file"/> now (read in 1 MiB pieces); null reason when it was, else why not.
    /// </summary>
    public unsafe string? Verify(SafeFileHandle file, ImageModel image)
    {
        if (image.Signature is not { } signature) return "the image is not signed";
        if (signature.KeyId != Id)
            return $"the image is signed with another key (id {signature.KeyId:x16}; this host's key is {Id:x16})";
        using var mac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Key);
        byte[] buffer = new byte[1 << 20];
        for (long offset = 0; offset < image.SignatureOffset;)
        {
            int n = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, image.SignatureOffset - offset)), offset);
            if (n <= 0) return "the image ends before its signature";
            mac.AppendData(buffer, 0, n);
            offset += n;
        }
        byte[] expected = mac.GetHashAndReset();
        var recorded = new ReadOnlySpan<byte>(signature.Mac, ImageSignatureRecord.MacLength);
        return CryptographicOperations.FixedTimeEquals(expected, recorded)
            ? null : "the signature does not match the image's contents: it was changed after the checkpoint";
    }
}
