using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Reads and writes another task's memory through /proc/PID/mem, which (for its ptracer)
/// also writes read-only and non-present pages, and moves large buffers in one call.
/// </summary>
public static class TaskMemory
{
    public static byte[] Read(int pid, ulong address, int length)
    {
        using SafeFileHandle mem = File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.Read);
        byte[] buffer = new byte[length];
        int done = 0;
        while (done < length)
        {
            int n = RandomAccess.Read(mem, buffer.AsSpan(done), checked((long)address + done));
            if (n <= 0)
                throw new IOException($"reading {length} bytes of task {pid} at 0x{address:x} stopped after {done}");
            done += n;
        }
        return buffer;
    }

    public static void Write(int pid, ulong address, ReadOnlySpan<byte> data)
    {
        using SafeFileHandle mem = File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.ReadWrite);
        Write(mem, pid, address, data);
    }

    /// <summary>Writes through an already open /proc/PID/mem handle (for many writes).</summary>
    public static void Write(SafeFileHandle mem, int pid, ulong address, ReadOnlySpan<byte> data)
    {
        // RandomAccess.Write loops until everything is written or throws.
        try
        {
            RandomAccess.Write(mem, data, checked((long)address));
        }
        catch (IOException e)
        {
            throw new IOException($"writing {data.Length} bytes into task {pid} at 0x{address:x} failed: {e.Message}", e);
        }
    }
}
