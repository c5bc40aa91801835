using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Memory;

/// <summary>What <see cref="MemoryCheckpoint.Read"/> found in one process: its mappings, their files' identities and pages.</summary>
public sealed record MemoryReading(int Pid, IReadOnlyList<MemoryReading.Vma> Vmas)
{
    /// <param name="Stat">the mapped file's identity (file mappings only)</param>
    /// <param name="Pages">the pages with contents of a private mapping, not counting <paramref name="Inherited"/></param>
    public sealed record Vma(MapsEntry Map, Ckpt.Image.Records.VmaType Type, Native.Stat? Stat, List<(ulong Start, ulong End)> Pages, List<ulong> Inherited);
}

/// <summary>
/// Reads the memory of a frozen tree's processes (<see cref="MemoryCheckpoint.Read"/>: /proc only) in tree order
/// on a thread of its own, while the tracer thread inspects the processes' other state: on two cores the
/// inspection of a 100-process tree spent a third of its time here. A refusal found here is thrown where the
/// process's memory is taken (<see cref="Take"/>), in tree order, so the checkpoint refuses what it refused before.
/// </summary>
public sealed class MemoryPrefetch : IDisposable
{
    private readonly (int Pid, int? ParentInTree)[] _processes;
    private readonly Dictionary<int, TaskCompletionSource<MemoryReading>> _readings = [];
    private readonly Thread _reader;
    private volatile bool _stopped;

    /// <param name="processes">the live processes that own their address space, in tree order, with their parent when it is written before them</param>
    public MemoryPrefetch(IEnumerable<(int Pid, int? ParentInTree)> processes)
    {
        _processes = processes.ToArray();
        foreach (var (pid, _) in _processes) _readings[pid] = new TaskCompletionSource<MemoryReading>(TaskCreationOptions.RunContinuationsAsynchronously);
        _reader = new Thread(ReadAll, maxStackSize: 1 << 20) { Name = "ckpt memory prefetch", IsBackground = true };
        _reader.Start();
    }

    /// <summary>The process's reading (waits for it), or null when it is not one of the prefetched processes.</summary>
    public MemoryReading? Take(int pid) => _readings.TryGetValue(pid, out var reading) ? reading.Task.GetAwaiter().GetResult() : null;

    private void ReadAll()
    {
        foreach (var (pid, parent) in _processes)
        {
            if (_stopped) _readings[pid].SetCanceled();
            else
            {
                try { _readings[pid].SetResult(MemoryCheckpoint.Read(pid, parent)); }
                catch (Exception e) { _readings[pid].SetException(e); }
            }
        }
    }

    /// <summary>Stops after the process being read (a failed checkpoint releases the tree) and waits for the thread.</summary>
    public void Dispose()
    {
        _stopped = true;
        _reader.Join();
    }
}
