using System.Runtime.InteropServices;
using System.Text;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A pseudo-terminal made by a test, standing in for the user's terminal: the test holds the master
/// (as a terminal emulator would) and starts a program as the leader of a new session on the slave,
/// which becomes that session's controlling terminal (opened without O_NOCTTY by a session leader
/// without one). Output is read from the master; input written to it.
/// </summary>
internal sealed unsafe partial class TestTerminal : IDisposable
{
    private const int O_RDWR = 2, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private readonly StringBuilder _output = new();

    public int Master { get; }
    public string SlavePath { get; }

    public TestTerminal()
    {
        Master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (Master < 0 || grantpt(Master) != 0 || unlockpt(Master) != 0) throw new InvalidOperationException($"posix_openpt: errno {Marshal.GetLastPInvokeError()}");
        byte* name = stackalloc byte[64];
        if (ptsname_r(Master, name, 64) != 0) throw new InvalidOperationException("ptsname_r");
        SlavePath = Marshal.PtrToStringAnsi((nint)name)!;
    }

    /// <summary>Starts argv as a session leader with the slave on 0-2 as its controlling terminal; returns its pid.</summary>
    public int StartSessionLeader(params string[] argv) =>
        // No O_NOCTTY: the slave becomes the session's controlling terminal.
        CheckpointTestSupport.SpawnWithDescriptors(argv, newSession: true, [(0, SlavePath, O_RDWR)], [(0, 1), (0, 2)]);

    public void Write(string text)
    {
        byte[] bytes = Encoding.ASCII.GetBytes(text);
        fixed (byte* p = bytes)
            if (write(Master, p, (nuint)bytes.Length) != bytes.Length) throw new InvalidOperationException($"write to the terminal: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Everything read from the master so far, waiting (bounded) until it contains the text.</summary>
    public string WaitFor(string text, int seconds = 20)
    {
        byte* buffer = stackalloc byte[4096];
        for (int i = 0; i < seconds * 50; i++)
        {
            nint n;
            while ((n = read(Master, buffer, 4096)) > 0) _output.Append(Encoding.ASCII.GetString(buffer, (int)n));
            if (_output.ToString().Contains(text, StringComparison.Ordinal)) return _output.ToString();
            Thread.Sleep(20);
        }
        throw new Xunit.Sdk.XunitException($"'{text}' never appeared on the terminal {SlavePath}; it showed: {_output}");
    }

    public void Dispose() => close(Master);

    [LibraryImport("libc", SetLastError = true)] private static partial int posix_openpt(int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int grantpt(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial int unlockpt(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial int ptsname_r(int fd, byte* buffer, nuint length);
    [LibraryImport("libc", SetLastError = true)] private static partial nint read(int fd, byte* buffer, nuint count);
    [LibraryImport("libc", SetLastError = true)] private static partial nint write(int fd, byte* buffer, nuint count);
    [LibraryImport("libc")] private static partial int close(int fd);
}
