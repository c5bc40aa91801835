namespace Ckpt.Image.Records;

/// <summary>
/// Who wrote the image, proven: a MAC of every byte before this record, made at checkpoint with
/// the checkpointing host's image key, a secret only root can read (docs/SECURITY.md). Written
/// right before the TAIL (whose checksum covers this record too) when the engine could read the
/// key; absent otherwise. A restore by root trusts the credentials of a signed image whose MAC
/// it can verify with its own key, whoever owns the file; without a valid signature the image
/// file's owner and mode say who could have written it. The record cannot vouch for itself: an
/// attacker can remove it or copy it, so it is only ever a reason to trust more, never checked
/// for consistency on its own.
/// </summary>
[ImageRecord(RecordType.ImageSignature)]
public unsafe partial struct ImageSignatureRecord
{
    public const uint HmacSha256 = 1;
    public const int MacLength = 32;

    public uint Algorithm;               // 1: HMAC-SHA256 (the only one)
    public uint Reserved;
    public ulong KeyId;                  // first 8 bytes (little endian) of SHA-256 of the key: names which key signed
    public fixed byte Mac[32];           // HMAC-SHA256(key, image bytes [0, offset of this record))
}
