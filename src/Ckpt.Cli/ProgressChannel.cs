using System.Text.Json;

namespace Ckpt.Cli;

/// <summary>One JSON object per line on --progress-fd (docs/ARCHITECTURE.md); a no-op without it.</summary>
internal sealed unsafe partial class ProgressChannel : IDisposable
{
    private int _fd;

    private ProgressChannel(int fd) => _fd = fd;

    public static ProgressChannel Open(int? fd) => new(fd ?? -1);

    public void Write(Action<Utf8JsonWriter> fields)
    {
        if (_fd < 0) return;
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            fields(json);
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        WriteLine(buffer.ToArray());
    }

    private void WriteLine(byte[] line)
    {
        // write(2) at the descriptor's own position: the fd may be a pipe, a terminal or a file
        // shared with other writers, so no stream with its own idea of the offset.
        fixed (byte* bytes = line)
        {
            for (int done = 0; done < line.Length;)
            {
                nint n = write(_fd, bytes + done, (nuint)(line.Length - done));
                if (n <= 0) return; // a reader that went away must not fail the restore
                done += (int)n;
            }
        }
    }

    /// <summary>The failure result line: the category tells PowerShell which ErrorCategory to use.</summary>
    public void Failure(string category, string message, int errno) => Write(w =>
    {
        w.WriteString("event", "result");
        w.WriteBoolean("ok", false);
        w.WriteString("category", category);
        w.WriteString("message", message);
        w.WriteNumber("errno", errno);
    });

    public void Dispose() { }

    /// <summary>
    /// The engine's own peak resident set (VmHWM of /proc/self/status), for the result line. Not
    /// wait4's ru_maxrss: that also counts the memory of a parent that spawned the engine with vfork.
    /// </summary>
    public static long PeakResidentKib()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return parts.Length >= 2 && long.TryParse(parts[1], out long kib) ? kib : -1;
        }
        return -1;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte* buffer, nuint count);
}
