using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Threads started once and kept for every concurrent stage of a restore (<see cref="PtraceRelay"/>):
/// a tree restore has a dozen such stages, and starting eight threads for each cost more than the
/// stage's work on two busy cores. They are made with pthread_create, not Thread.Start, which waits for
/// each new thread by calling sched_yield until it runs: 10 ms of CPU for eight on two loaded cores, and
/// up to 70 ms of wall time. The runtime takes a thread in at its first managed call. They wait on a
/// <see cref="Futex"/> between jobs and never keep the engine alive (its exit ends them).
/// </summary>
public sealed unsafe partial class WorkerPool
{
    private static WorkerPool? s_pool;
    private readonly int _size;
    private readonly GCHandle _handle;
    private readonly Futex _generation = new(); // one more for every job
    private readonly Futex _finished = new();   // threads done with the current job
    private Action? _job;
    private int _wanted;

    private WorkerPool(int size)
    {
        _size = size;
        _handle = GCHandle.Alloc(this); // the threads' way back to their pool; the pool lives as long as they do
        for (int i = 0; i < size; i++)
        {
            int error = pthread_create(out _, 0, &ThreadStart, (nint)new StartArgument(GCHandle.ToIntPtr(_handle), i).Pack());
            if (error != 0) throw new SyscallException("pthread_create (restore worker)", error, Environment.ProcessId);
        }
    }

    /// <summary>A pool of at least <paramref name="size"/> threads. Not for concurrent callers: one tracer thread uses it.</summary>
    public static WorkerPool OfSize(int size)
    {
        if (s_pool is null || s_pool._size < size) s_pool = new WorkerPool(size); // a smaller one stays idle
        return s_pool;
    }

    // The pool's handle and the thread's index, passed as pthread_create's one argument.
    private readonly record struct StartArgument(nint Pool, int Index)
    {
        public StartArgument* Pack()
        {
            var packed = (StartArgument*)NativeMemory.Alloc((nuint)sizeof(StartArgument));
            *packed = this;
            return packed;
        }
    }

    [UnmanagedCallersOnly]
    private static nint ThreadStart(nint argument)
    {
        StartArgument start = *(StartArgument*)argument;
        NativeMemory.Free((void*)argument);
        var pool = (WorkerPool)GCHandle.FromIntPtr(start.Pool).Target!;
        pool.Loop(start.Index);
        return 0;
    }

    [LibraryImport("libc")]
    private static partial int pthread_create(out nint thread, nint attributes, delegate* unmanaged<nint, nint> start, nint argument);

    /// <summary>Runs <paramref name="job"/> on <paramref name="count"/> of the threads; <see cref="WaitAll"/> waits for them.</summary>
    public void Start(Action job, int count)
    {
        if (count > _size) throw new ArgumentOutOfRangeException(nameof(count), $"the pool has {_size} threads");
        _job = job;
        _wanted = count;
        _finished.Set(0);
        _generation.Increment();
    }

    /// <summary>Returns once every thread of the pool is done with the job <see cref="Start"/> gave (and no longer touches anything of it).</summary>
    public void WaitAll()
    {
        int finished;
        while ((finished = _finished.Value) < _size) _finished.WaitWhile(finished);
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
