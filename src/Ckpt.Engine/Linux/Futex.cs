using System.Runtime.InteropServices;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Linux;

/// <summary>
/// A word in native memory (never moved by the GC) that threads of the engine wait on and wake with
/// futex(2), private to the process. Why not the runtime's events and locks: they spin and call
/// sched_yield before they block, and on this two-core machine a spinning thread takes the core from
/// the thread or the restored task it waits for (<see cref="PtraceRelay"/>).
/// </summary>
public sealed unsafe partial class Futex : IDisposable
{
    private const long FUTEX_WAIT_PRIVATE = 128, FUTEX_WAKE_PRIVATE = 129;
    private int* _word = (int*)NativeMemory.AllocZeroed(sizeof(int));

    public int Value => Volatile.Read(ref *_word);

    /// <summary>Sets the word and wakes every thread waiting on it.</summary>
    public void Set(int value)
    {
        Volatile.Write(ref *_word, value);
        futex(_word, FUTEX_WAKE_PRIVATE, int.MaxValue, 0);
    }

    /// <summary>Adds one to the word and wakes every thread waiting on it.</summary>
    public void Increment()
    {
        Interlocked.Increment(ref *_word);
        futex(_word, FUTEX_WAKE_PRIVATE, int.MaxValue, 0);
    }

    /// <summary>Blocks while the word still holds <paramref name="expected"/> (returns at once when it does not).</summary>
    public void WaitWhile(int expected)
    {
        while (Volatile.Read(ref *_word) == expected)
            futex(_word, FUTEX_WAIT_PRIVATE, expected, 0); // EAGAIN (changed) and EINTR: the loop looks again
    }

    public void Dispose()
    {
        NativeMemory.Free(_word);
        _word = null;
    }

    [LibraryImport("libc", EntryPoint = "syscall")]
    private static partial long futex_syscall(long number, int* word, long operation, int value, nint timeout);

    private static void futex(int* word, long operation, int value, nint timeout) => futex_syscall(SYS_futex, word, operation, value, timeout);
}
