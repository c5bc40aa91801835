using System.Text;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Reads /proc files (and directories) with plain open, read and close. File.ReadAllLines on a /proc file costs
/// an fstat, an flock (.NET's FileShare emulation), a FileStream with 4 KiB reads and a StreamReader; a
/// checkpoint of a 100-process tree reads several thousand such files, each a few hundred bytes, and spent more
/// time in that machinery than in the kernel producing them. Any failure (the process gone, no permission) is
/// left to the .NET call it replaces, which runs again and throws what it always threw (or returns the file, if
/// it can be read by then): callers keep telling "gone" (IOException, DirectoryNotFoundException) from "not ours"
/// (UnauthorizedAccessException) as before.
/// </summary>
public static class ProcText
{
    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000, O_DIRECTORY = 0x10000;
    private const int FirstBufferBytes = 16 << 10;

    // One buffer per thread (the tracer, the audit's helper and the memory prefetch read at once).
    [ThreadStatic] private static byte[]? t_buffer;

    /// <summary>The file's text (UTF-8), as File.ReadAllText.</summary>
    public static string ReadAllText(string path) =>
        TryRead(path, out byte[] buffer, out int length) ? Encoding.UTF8.GetString(buffer, 0, length) : File.ReadAllText(path);

    /// <summary>The file's lines, as File.ReadAllLines ("\n", "\r" or "\r\n" end a line; no empty line after a last line end).</summary>
    public static string[] ReadAllLines(string path) => TryRead(path, out byte[] buffer, out int length)
        ? SplitLines(Encoding.UTF8.GetString(buffer, 0, length)) : File.ReadAllLines(path);

    /// <summary>The file's bytes, as File.ReadAllBytes.</summary>
    public static byte[] ReadAllBytes(string path) =>
        TryRead(path, out byte[] buffer, out int length) ? buffer.AsSpan(0, length).ToArray() : File.ReadAllBytes(path);

    /// <summary>
    /// The file's text, or null where File.Exists says it does not exist (missing, or not ours to see): the
    /// "if (File.Exists(f)) read f" of optional /proc files in one open.
    /// </summary>
    public static string? ReadAllTextIfExists(string path)
    {
        if (TryRead(path, out byte[] buffer, out int length)) return Encoding.UTF8.GetString(buffer, 0, length);
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    /// <summary>
    /// The numeric names in a /proc directory (/proc/PID/fd, /proc/PID/task), in directory order; the others are left out.
    /// Directory.GetFileSystemEntries would also stat every entry (two calls per descriptor of /proc/PID/fd).
    /// A failure is left to Directory.GetFileSystemEntries (gone: DirectoryNotFoundException).
    /// </summary>
    public static unsafe List<int> ListNumbers(string directory)
    {
        int fd = Native.open(directory, O_RDONLY | O_CLOEXEC | O_DIRECTORY, 0);
        if (fd < 0) return NumbersFromDotNet(directory);
        var numbers = new List<int>();
        try
        {
            byte[] buffer = Buffer(FirstBufferBytes);
            fixed (byte* start = buffer)
            {
                while (true)
                {
                    long n = Native.syscall3(SyscallNumbers.SYS_getdents64, fd, (long)start, buffer.Length);
                    if (n < 0) return NumbersFromDotNet(directory);
                    if (n == 0) break;
                    // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[]
                    for (long at = 0; at < n;)
                    {
                        ushort recordLength = *(ushort*)(start + at + 16);
                        if (ParseNumber(new ReadOnlySpan<byte>(start + at + 19, recordLength - 19)) is int number) numbers.Add(number);
                        at += recordLength;
                    }
                }
            }
        }
        finally
        {
            Native.close(fd);
        }
        return numbers;
    }

    // A NUL-terminated decimal name ("12"); null for ".", ".." and anything else.
    private static int? ParseNumber(ReadOnlySpan<byte> name)
    {
        int end = name.IndexOf((byte)0);
        if (end >= 0) name = name[..end];
        if (name.Length == 0 || name.Length > 9) return null;
        int value = 0;
        foreach (byte b in name)
        {
            if (b < '0' || b > '9') return null;
            value = value * 10 + (b - '0');
        }
        return value;
    }

    private static List<int> NumbersFromDotNet(string directory)
    {
        var numbers = new List<int>();
        foreach (string entry in Directory.GetFileSystemEntries(directory))
            if (int.TryParse(Path.GetFileName(entry), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int number)) numbers.Add(number);
        return numbers;
    }

    // The whole file into the thread's buffer (grown as needed); false on any failure.
    private static unsafe bool TryRead(string path, out byte[] buffer, out int length)
    {
        buffer = Buffer(FirstBufferBytes);
        length = 0;
        int fd = Native.open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return false;
        try
        {
            while (true)
            {
                if (length == buffer.Length) buffer = Grow(buffer, length);
                nint n;
                fixed (byte* start = buffer) n = Native.read(fd, start + length, (nuint)(buffer.Length - length));
                if (n < 0) return false;
                if (n == 0) return true;
                length += (int)n;
            }
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static byte[] Buffer(int bytes) => t_buffer is { } buffer && buffer.Length >= bytes ? buffer : t_buffer = new byte[bytes];

    private static byte[] Grow(byte[] buffer, int used)
    {
        byte[] larger = new byte[buffer.Length * 2];
        buffer.AsSpan(0, used).CopyTo(larger);
        return t_buffer = larger;
    }

    /// <summary>Lines as File.ReadAllLines and StreamReader.ReadLine make them.</summary>
    public static string[] SplitLines(string text)
    {
        var lines = new List<string>();
        foreach (Range line in LineRanges(text)) lines.Add(text[line]);
        return lines.ToArray();
    }

    /// <summary>The ranges of the lines of <paramref name="text"/>, as <see cref="SplitLines"/> cuts them, without making strings.</summary>
    public static IEnumerable<Range> LineRanges(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int end = text.AsSpan(start).IndexOfAny('\r', '\n');
            if (end < 0)
            {
                yield return start..text.Length;
                yield break;
            }
            end += start;
            yield return start..end;
            start = end + 1;
            if (text[end] == '\r' && start < text.Length && text[start] == '\n') start++;
        }
    }
}
