using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Memory;

/// <summary>
/// How `ckpt restore --lazy` returns without waiting for a second engine to start: the command starts
/// the page server process first thing, holding one end of a socket pair, and restores the process
/// itself (serving its faults meanwhile, <see cref="LazyPageServer"/>) while the server starts on the
/// other core. Once the process runs, the command stops serving and sends the server the image, every
/// userfaultfd (SCM_RIGHTS) and the pages still missing (<see cref="Send"/>) and exits without waiting
/// for the server: a message in a unix socket keeps the descriptors it carries open until it is read,
/// and the server (already executed, still starting) takes it whenever its startup is done
/// (<see cref="Receive"/>). Faults in between wait in the userfaultfd, which the process itself holds
/// until every page is in: whichever engine dies, the process never runs on with a zero page. The message comes from the engine that restored the
/// process, over a socket only these two processes hold: it is not an image, and is read as trusted.
/// </summary>
public static unsafe partial class LazyHandover
{
    private const int Magic = 0x31485a4c; // "LZH1"
    private const int MaxDescriptors = 253; // SCM_MAX_FD: the image and up to 252 address spaces (the process and its forks)
    private const int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_WAITALL = 0x100, MSG_CMSG_CLOEXEC = 0x40000000, MSG_NOSIGNAL = 0x4000;
    private const int HeaderSize = 16, ControlHeaderSize = 16; // ours: magic, descriptor count, payload length; struct cmsghdr

    /// <summary>A connected pair of unix stream sockets, close-on-exec (the server's end is dup2'ed to its fd 3).</summary>
    public static (int Ours, int Theirs) CreateSocketPair()
    {
        int* pair = stackalloc int[2];
        if (socketpair(SocketNative.AF_UNIX, SocketNative.SOCK_STREAM | SocketNative.SOCK_CLOEXEC, 0, pair) != 0)
            throw new SyscallException("socketpair for the page server", Native.LastErrno, Environment.ProcessId);
        return (pair[0], pair[1]);
    }

    /// <summary>
    /// The restoring engine's side: stops <paramref name="server"/> and sends what it served; an
    /// <see cref="IOException"/> when the page server process's end is closed (it died, or was never
    /// there). It does not wait for the server to read it (its startup, ~15 ms here, would be in the
    /// command's return): a server that dies after this leaves the process blocked on its first missing
    /// page, as when the server dies later (docs/RESTORE.md).
    /// </summary>
    public static void Send(int socket, LazyPageServer server) => server.HandOver(spaces =>
    {
        if (spaces.Count + 1 > MaxDescriptors)
            throw new IOException($"the page server takes at most {MaxDescriptors - 1} address spaces; the process and its children have {spaces.Count}");
        var payload = new MemoryStream();
        using (var writer = new BinaryWriter(payload, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(server.ImageTail.TailOffset);
            writer.Write(server.ImageTail.Checksum);
            writer.Write(spaces.Count);
            foreach (LazyPageServer.ServedSpace space in spaces)
            {
                int held = IndexOfUffd(spaces, space.HeldUffd);
                writer.Write(space.Pid);
                writer.Write(space.HeldFd);
                writer.Write(space.Gone);
                writer.Write(held);
                space.Pages.WriteTo(writer);
            }
        }
        int[] descriptors = [(int)server.Image.DangerousGetHandle(), .. spaces.Select(s => s.Uffd)];
        SendHeader(socket, descriptors, payload.Length);
        WriteAll(socket, payload.GetBuffer().AsSpan(0, (int)payload.Length));
    });

    /// <summary>
    /// The page server process's side: the image, the userfaultfds and the missing pages sent by the
    /// restoring engine, served from now on (filling starts with <see cref="LazyPageServer.StartFilling"/>).
    /// Null when the socket closed first (the restore failed: nothing to serve).
    /// </summary>
    public static LazyPageServer? Receive(int socket)
    {
        byte* header = stackalloc byte[HeaderSize];
        int controlLength = ControlHeaderSize + MaxDescriptors * sizeof(int);
        byte* control = stackalloc byte[controlLength + 8];
        var iov = new Native.Iovec { Base = (nint)header, Length = HeaderSize };
        var message = new SocketNative.MessageHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlLength };
        nint got = recvmsg(socket, &message, MSG_WAITALL | MSG_CMSG_CLOEXEC);
        if (got == 0) return null;
        if (got != HeaderSize || *(int*)header != Magic)
            throw new IOException($"page server: bad handover header ({got} bytes, errno {Native.LastErrno})");
        int count = *(int*)(header + 4);
        long length = *(long*)(header + 8);
        if (message.ControlLength < ControlHeaderSize || *(int*)(control + 8) != SOL_SOCKET || *(int*)(control + 12) != SCM_RIGHTS
            || (int)((*(ulong*)control - ControlHeaderSize) / sizeof(int)) != count || (message.Flags & SocketNative.MSG_CTRUNC) != 0)
            throw new IOException("page server: the handover came without its descriptors");
        int[] descriptors = new ReadOnlySpan<int>(control + ControlHeaderSize, count).ToArray();

        byte[] payload = new byte[length];
        ReadAll(socket, payload);
        using var reader = new BinaryReader(new MemoryStream(payload));
        long tailOffset = reader.ReadInt64();
        ulong checksum = reader.ReadUInt64();
        var image = new SafeFileHandle(descriptors[0], ownsHandle: true);
        var spaces = new List<LazyPageServer.ServedSpace>();
        int spaceCount = reader.ReadInt32();
        for (int i = 0; i < spaceCount; i++)
        {
            int pid = reader.ReadInt32(), heldFd = reader.ReadInt32();
            bool gone = reader.ReadBoolean();
            int held = reader.ReadInt32();
            spaces.Add(new LazyPageServer.ServedSpace(pid, descriptors[1 + i], heldFd, descriptors[1 + held], LazyPages.ReadFrom(reader, image), gone));
        }

        var hash = new Task<bool>(() => ImageChecksum.Matches(image, tailOffset, checksum), TaskCreationOptions.LongRunning);
        void StartHash() { lock (hash) if (hash.Status == TaskStatus.Created) hash.Start(); }
        LazyPageServer server = LazyPageServer.Adopt(image, () => { StartHash(); return hash.GetAwaiter().GetResult(); },
            () => RestorePlan.ChecksumMismatch(tailOffset, checksum), spaces);
        server.BeforeFilling = StartHash;
        return server;
    }

    private static int IndexOfUffd(IReadOnlyList<LazyPageServer.ServedSpace> spaces, int uffd)
    {
        for (int i = 0; i < spaces.Count; i++)
            if (spaces[i].Uffd == uffd) return i;
        throw new InvalidOperationException($"userfaultfd {uffd} held by a served process is not one the page server reads");
    }

    private static void SendHeader(int socket, int[] descriptors, long payloadLength)
    {
        byte* header = stackalloc byte[HeaderSize];
        *(int*)header = Magic;
        *(int*)(header + 4) = descriptors.Length;
        *(long*)(header + 8) = payloadLength;
        int controlLength = ControlHeaderSize + ((descriptors.Length * sizeof(int) + 7) & ~7);
        byte* control = stackalloc byte[controlLength];
        new Span<byte>(control, controlLength).Clear();
        *(ulong*)control = (ulong)(ControlHeaderSize + descriptors.Length * sizeof(int)); // cmsg_len: CMSG_LEN
        *(int*)(control + 8) = SOL_SOCKET;
        *(int*)(control + 12) = SCM_RIGHTS;
        descriptors.AsSpan().CopyTo(new Span<int>(control + ControlHeaderSize, descriptors.Length));
        var iov = new Native.Iovec { Base = (nint)header, Length = HeaderSize };
        var message = new SocketNative.MessageHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlLength };
        nint sent = sendmsg(socket, &message, MSG_NOSIGNAL);
        if (sent != HeaderSize)
            throw new IOException($"the page server process did not take over the lazy restore (sendmsg: errno {Native.LastErrno})");
    }

    private static void WriteAll(int socket, ReadOnlySpan<byte> bytes)
    {
        fixed (byte* start = bytes)
        {
            for (int done = 0; done < bytes.Length;)
            {
                nint n = send(socket, start + done, (nuint)(bytes.Length - done), MSG_NOSIGNAL);
                if (n <= 0) throw new IOException($"the page server process did not take over the lazy restore (send: errno {Native.LastErrno})");
                done += (int)n;
            }
        }
    }

    private static void ReadAll(int socket, byte[] bytes)
    {
        fixed (byte* start = bytes)
        {
            for (int done = 0; done < bytes.Length;)
            {
                nint n = Native.read(socket, start + done, (nuint)(bytes.Length - done));
                if (n <= 0) throw new IOException($"page server: the handover ends after {done} of {bytes.Length} bytes");
                done += (int)n;
            }
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socketpair(int domain, int type, int protocol, int* pair);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendmsg(int fd, SocketNative.MessageHeader* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recvmsg(int fd, SocketNative.MessageHeader* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, byte* buffer, nuint length, int flags);
}
