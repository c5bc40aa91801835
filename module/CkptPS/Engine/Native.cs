using System.Runtime.InteropServices;

namespace CkptPS.Engine;

/// <summary>
/// The few libc calls the module needs to start the engine with an extra pipe as its
/// progress channel: System.Diagnostics.Process cannot hand a child a descriptor other
/// than 0, 1 and 2, and .NET reaps the children it starts itself.
/// </summary>
internal static unsafe partial class Native
{
    public const int OCloexec = 0x80000;
    public const int ORdonly = 0;
    public const short PosixSpawnSetSigDefault = 0x04;
    public const short PosixSpawnSetSigMask = 0x08;
    public const short PosixSpawnSetSid = 0x80;
    public const int SigInt = 2, SigKill = 9, SigTerm = 15;
    public const int Eintr = 4;

    // glibc x86-64 sizes (sizeof posix_spawn_file_actions_t = 80, posix_spawnattr_t = 336);
    // allocated with room to spare since they are opaque.
    public const int FileActionsSize = 128;
    public const int SpawnAttrSize = 512;
    public const int SigsetSize = 128;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_init(void* actions);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_destroy(void* actions);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);

    /// <summary>glibc 2.34+: closes every descriptor from <paramref name="fromFd"/> up in the child.</summary>
    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_addclosefrom_np(void* actions, int fromFd);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn_file_actions_addopen(void* actions, int fd, string path, int flags, uint mode);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_init(void* attributes);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_destroy(void* attributes);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setflags(void* attributes, short flags);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setsigmask(void* attributes, byte* sigset);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setsigdefault(void* attributes, byte* sigset);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int posix_spawn(out int pid, string path, void* fileActions, void* attributes, byte** argv, byte** envp);

    /// <summary>A sigset_t holding the classic signals a fresh program expects at their defaults.</summary>
    public static void FillDefaultSignalSet(Span<byte> sigset)
    {
        sigset.Clear();
        for (int signal = 1; signal < 32; signal++)
        {
            if (signal is SigKill or 19) continue; // SIGKILL and SIGSTOP cannot be changed
            int bit = signal - 1;
            sigset[bit / 8] |= (byte)(1 << (bit % 8));
        }
    }

    /// <summary>Decodes a waitpid status: the exit code, or 128 + signal like a shell.</summary>
    public static int ExitCodeOf(int status) =>
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
}
