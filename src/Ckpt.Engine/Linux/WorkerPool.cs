namespace Ckpt.Engine.Linux;

/// <summary>
/// Threads started once and kept for every concurrent stage of a restore (<see cref="PtraceRelay"/>):
/// a tree restore has a dozen such stages, and starting eight threads for each cost more than the
/// stage's work on two busy cores (Thread.Start waits for the new thread by yielding the core).
/// They wait on a <see cref="Futex"/> between jobs and are background threads: they never keep the
/// engine alive.
/// </summary>
public sealed class WorkerPool
{
    private static WorkerPool? s_pool;
    private readonly Thread[] _threads;
    private readonly Futex _generation = new(); // one more for every job
    private readonly Futex _finished = new();   // threads done with the current job
    private Action? _job;
    private int _wanted;

    private WorkerPool(int size)
    {
        _threads = new Thread[size];
        for (int i = 0; i < size; i++)
        {
            int index = i;
            _threads[i] = new Thread(() => Loop(index), maxStackSize: 1 << 20) { Name = "ckpt restore worker", IsBackground = true };
            _threads[i].Start();
        }
    }

    /// <summary>A pool of at least <paramref name="size"/> threads. Not for concurrent callers: one tracer thread uses it.</summary>
    public static WorkerPool OfSize(int size)
    {
        if (s_pool is null || s_pool._threads.Length < size) s_pool = new WorkerPool(size); // a smaller one stays idle
        return s_pool;
    }

    /// <summary>Runs <paramref name="job"/> on <paramref name="count"/> of the threads; <see cref="WaitAll"/> waits for them.</summary>
    public void Start(Action job, int count)
    {
        if (count > _threads.Length) throw new ArgumentOutOfRangeException(nameof(count), $"the pool has {_threads.Length} threads");
        _job = job;
        _wanted = count;
        _finished.Set(0);
        _generation.Increment();
    }

    /// <summary>Returns once every thread of the pool is done with the job <see cref="Start"/> gave (and no longer touches anything of it).</summary>
    public void WaitAll()
    {
        int finished;
        while ((finished = _finished.Value) < _threads.Length) _finished.WaitWhile(finished);
        _job = null;
    }

    private void Loop(int index)
    {
        int seen = 0;
        while (true)
        {
            _generation.WaitWhile(seen);
            seen = _generation.Value;
            try
            {
                if (index < _wanted) _job!();
            }
            finally
            {
                _finished.Increment();
            }
        }
    }
}
