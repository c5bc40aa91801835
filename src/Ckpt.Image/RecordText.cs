using System.Text;

namespace Ckpt.Image;

/// <summary>Text held in fixed-size record fields.</summary>
public static class RecordText
{
    /// <summary>A NUL-terminated (or full) UTF-8 field.</summary>
    public static unsafe string CString(byte* bytes, int capacity)
    {
        var span = new ReadOnlySpan<byte>(bytes, capacity);
        int end = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
    }

    /// <summary>Copies at most capacity - 1 bytes of UTF-8, leaving a terminator.</summary>
    public static unsafe void SetCString(byte* destination, int capacity, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        int length = Math.Min(bytes.Length, capacity - 1);
        for (int i = 0; i < capacity; i++) destination[i] = i < length ? bytes[i] : (byte)0;
    }
}
