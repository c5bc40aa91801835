using Ckpt.Engine.Restore;
using Ckpt.Engine.Linux;
using Ckpt.Image.Model;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// One descriptor table's restore, as the kinds see it: every file object of the table, and the
/// objects a kind made as a side effect of making another (socketpair(2) makes both ends of a pair).
/// Such an object is parked above every recorded descriptor number, so placing other descriptors with
/// dup3 cannot close it, until <see cref="FilesRestore"/> reaches the object and places it instead of
/// asking its kind to open it.
/// </summary>
public sealed class FileCreation(SyscallInjector syscalls, RestorePlan plan, int parkingFloor, IReadOnlyDictionary<int, (int Pid, int Fd)>? elsewhere = null)
{
    /// <summary>Objects of the tree already placed in some process, by objref (FilesRestore's); a terminal pair's master the restore made, by the pair's objref.</summary>
    public IReadOnlyDictionary<int, (int Pid, int Fd)> Elsewhere { get; } = elsewhere ?? new Dictionary<int, (int, int)>();

    private const ulong F_DUPFD_CLOEXEC = 1030;
    private readonly Dictionary<int, long> _parked = [];
    private readonly Dictionary<int, long> _mapped = [];

    /// <summary>Every file object of the descriptor table being restored, by objref.</summary>
    public IReadOnlyDictionary<int, FileImage> Files => Plan.Files;

    /// <summary>The plan of the process whose table is restored (kinds that read file contents from the image).</summary>
    public RestorePlan Plan { get; } = plan;

    /// <summary>The tree's established TCP connections, kept in repair mode until every process is restored.</summary>
    public Sockets.TcpConnectionRestore? TcpConnections { get; init; }

    /// <summary>Keeps <paramref name="descriptor"/> (in the task) as file object <paramref name="objRef"/> until it is placed.</summary>
    public void Park(int objRef, long descriptor)
    {
        long parked = syscalls.Call($"fcntl(F_DUPFD_CLOEXEC, {parkingFloor}) parking file objref {objRef}", SYS_fcntl, (ulong)descriptor, F_DUPFD_CLOEXEC, (ulong)parkingFloor);
        syscalls.Call($"close of temporary fd {descriptor}", SYS_close, (ulong)descriptor);
        _parked.Add(objRef, parked);
    }

    /// <summary>The parked descriptor of a file object made earlier, if any (it is no longer parked).</summary>
    public bool TryTake(int objRef, out long descriptor) => _parked.Remove(objRef, out descriptor);

    /// <summary>
    /// The unlinked files the memory stage made for its mappings (Memory.UnlinkedFileMappings), parked
    /// above every recorded descriptor number, for the descriptors that share them.
    /// </summary>
    public void AddMapped(IReadOnlyDictionary<int, long> mapped)
    {
        foreach (var (objRef, descriptor) in mapped) _mapped.Add(objRef, descriptor);
    }

    /// <summary>The parked descriptor of an unlinked file made for its mappings, if any (it is no longer parked).</summary>
    public bool TryTakeMapped(int objRef, out long descriptor) => _mapped.Remove(objRef, out descriptor);

    /// <summary>
    /// Closes the mapped files no descriptor took: only an image whose descriptor of the file was
    /// placed from another process of the tree leaves one (a checkpoint refuses such sharing).
    /// </summary>
    public void CloseUntakenMapped()
    {
        foreach (var (objRef, descriptor) in _mapped)
            syscalls.Call($"close of the unlinked file objref {objRef} made for its mappings", SYS_close, (ulong)descriptor);
        _mapped.Clear();
    }

    /// <summary>After the table is restored nothing may stay parked: that would be a descriptor the image does not have.</summary>
    public void RequireNothingParked()
    {
        if (_parked.Count != 0)
            throw new InvalidOperationException($"file objects {string.Join(", ", _parked.Keys)} were made as another's side effect but no descriptor uses them");
    }
}
