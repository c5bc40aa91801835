using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Checkpoint side of descriptors in flight (SCM_RIGHTS) in a unix socket's receive queue. A MSG_PEEK with a control
/// buffer (<see cref="SocketQueuePeek"/>) installs, in the engine, new descriptors for the files a queued message
/// carries, and leaves the message queued. Each is then a file object like a descriptor of the tree:
/// - the same open file description as a descriptor inspected before it (kcmp KCMP_FILE, as <see cref="FilesCheckpoint"/>
///   finds dup'ed and inherited descriptors), of this process or another of the tree, or as a descriptor in flight
///   found before: a use of that object (its objref);
/// - otherwise a new object inspected by its descriptor kind from the engine's copy, written in the queue right
///   before the message's IN_FLIGHT_FILE record. A descriptor of the tree inspected later that is the same
///   description becomes a use of it (the engine's copy is registered in <see cref="FileDescriptions"/>).
///   Only kinds whose state the engine's copy shows in full are saved this way (<see cref="IDescriptorKind.SavedInFlight"/>:
///   path files, pipe ends whose other end the tree holds, eventfds); any other is refused by name (a socket held by no
///   process inspected before: its own queue and peer could not be saved from here).
/// The engine's copies stay open until the image is written (later processes are compared with them) and are
/// closed by <see cref="EngineCopies"/> when the checkpoint ends, whether it succeeded or not.
/// </summary>
public sealed class InFlightFiles(int pid, FilesCheckpoint table, FileDescriptions descriptions, ObjectTable objects)
{
    /// <summary>A queued message's descriptors: the files, and which of them are defined here (first use).</summary>
    public sealed record Message(int Index, IReadOnlyList<(IInspectedFile File, bool FirstUse)> Files);

    /// <summary>Where the engine's copies go as soon as a peek installed them.</summary>
    public EngineCopies Copies => descriptions.EngineCopies;

    /// <summary>The engine's descriptors a peek installed for one message (already owned by <see cref="EngineCopies"/>).</summary>
    public Message Inspect(string socketName, int index, IReadOnlyList<int> engineFds)
    {
        var files = new List<(IInspectedFile, bool)>();
        for (int i = 0; i < engineFds.Count; i++)
            files.Add(InspectOne($"{socketName}: descriptor {i + 1} in flight in queued message {index + 1}", engineFds[i]));
        return new Message(index, files);
    }

    private (IInspectedFile File, bool FirstUse) InspectOne(string what, int engineFd)
    {
        int self = Environment.ProcessId;
        string link = $"/proc/self/fd/{engineFd}";
        string target = new FileInfo(link).LinkTarget ?? "";
        Native.Stat stat = Native.StatOrThrow(link, self);
        if ((table.SharedWithEngineCopy(pid, engineFd, stat) ?? descriptions.SharedWith(self, engineFd, stat, sameProcessToo: true)) is { } known)
            return (known, false);
        var info = new DescriptorInfo(self, engineFd, target, stat, ProcFdInfo.Read(self, engineFd)) { Objects = objects, TreePids = descriptions.TreePids ?? [pid] };
        try
        {
            DescriptorAudit.Check(info);
            IDescriptorKind kind = DescriptorKinds.ForCheckpoint(info);
            if (!kind.SavedInFlight)
                throw new CheckpointRefusedException($"no descriptor inspected before it holds this file (processes in tree order, lower descriptors first), and a {KindName(kind)} is not saved in flight on its own: unsupported");
            int objRef = objects.Next();
            IInspectedFile inspected = kind.Inspect(info, objRef);
            if (FileLocks.Inspect(info, objRef).Count > 0)
                throw new CheckpointRefusedException("it holds file locks (flock or OFD): unsupported in flight");
            descriptions.Add(self, engineFd, inspected);
            return (inspected, true);
        }
        catch (CheckpointRefusedException e)
        {
            throw new CheckpointRefusedException($"{what} ({target}): {e.Message}");
        }
    }

    /// <summary>"unix socket", "memfd", "pty master": a kind's class name in words.</summary>
    /// (No Regex: it is the engine's only other use of System.Text.RegularExpressions, whose code makes every
    /// startup longer, see docs/benchmarks.md, issue 15.)
    private static string KindName(IDescriptorKind kind)
    {
        string name = kind.GetType().Name.Replace("Kind", "");
        var words = new System.Text.StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsAsciiLetterLower(name[i - 1]) && char.IsAsciiLetterUpper(name[i])) words.Append(' ');
            words.Append(name[i]);
        }
        return words.ToString().ToLowerInvariant();
    }

    /// <summary>
    /// Whether a socket of these processes has descriptors in flight in its receive queue (fdinfo's scm_fds, Linux 5.8+):
    /// the audit before the freeze, which does not peek, leaves to the frozen pass what depends on them (a pipe end whose
    /// other end is only in flight).
    /// </summary>
    public static bool AnyInTree(IEnumerable<int> pids)
    {
        foreach (int pid in pids)
        {
            try
            {
                foreach (string entry in Directory.GetFileSystemEntries($"/proc/{pid}/fdinfo"))
                    if (int.TryParse(Path.GetFileName(entry), out int fd) && ScmFds(pid, fd) > 0) return true;
            }
            catch (DirectoryNotFoundException) { /* before the freeze a process of the tree may exit: it holds nothing */ }
        }
        return false;
    }

    private static long ScmFds(int pid, int fd)
    {
        try { return ProcFdInfo.Read(pid, fd).Fields.TryGetValue("scm_fds", out string? count) && long.TryParse(count, out long n) ? n : 0; }
        catch (IOException) { return 0; } // closed meanwhile (before the freeze)
    }

    /// <summary>The engine's copies of descriptors in flight (so far) that are ends of this pipe (a /proc/PID/fd link target).</summary>
    public IEnumerable<(int Fd, uint Flags)> EngineEndsOf(string target) =>
        Copies.Fds.Where(fd => new FileInfo($"/proc/self/fd/{fd}").LinkTarget == target).Select(fd => (fd, ProcFdInfo.Read(Environment.ProcessId, fd).Flags)).ToList();

    /// <summary>A queued message's records after its SOCKET_QUEUE: SOCKET_RIGHTS, then per descriptor its FILE (first use) and IN_FLIGHT_FILE.</summary>
    public static void Write(ImageWriter writer, int socketObjRef, Message message)
    {
        writer.Write(new SocketRightsRecord { ObjRef = socketObjRef, DescriptorCount = (uint)message.Files.Count });
        foreach ((IInspectedFile file, bool firstUse) in message.Files)
        {
            if (firstUse) file.Write(writer);
            writer.Write(new InFlightFileRecord { SocketObjRef = socketObjRef, FileObjRef = file.File.ObjRef });
        }
    }
}

/// <summary>
/// The descriptors peeks installed in the engine during one checkpoint: every one is adopted as soon as the peek
/// returns, and all are closed when the checkpoint ends (its <see cref="FileDescriptions"/> is disposed), on success and on failure.
/// </summary>
public sealed class EngineCopies : IDisposable
{
    private readonly List<int> _fds = [];

    public void Adopt(int fd) => _fds.Add(fd);

    public IReadOnlyList<int> Fds => _fds;

    public void Dispose()
    {
        foreach (int fd in _fds) Native.close(fd);
        _fds.Clear();
    }
}
