using System.Collections.Concurrent;
using static Ckpt.Engine.Linux.Native;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Lets the processes of a restore stage be worked on by several threads at once while every ptrace
/// request still comes from the one thread that traces them (the kernel ties a tracee to the thread
/// that attached it). <see cref="RunConcurrently"/>, called on that tracer thread, has worker
/// threads that run the stage's code for one item each; a ptrace request made on a worker
/// (<see cref="Tracee"/> makes every request through <see cref="Call"/>) is handed to the tracer
/// thread, which makes it and hands back the result and errno. Waiting for a tracee's stop needs no
/// relay (waitpid serves any thread of the tracer's process), nor do /proc and process_vm calls.
/// Why: a process's stage is a chain of round trips to the task (each a wake-up of the task and of
/// the engine through the scheduler); one after the other for a hundred processes, the tree's restore
/// is mostly waiting, with one core idle. With several in flight both cores work and the waits overlap
/// (docs/benchmarks.md, "Process trees").
/// </summary>
public static unsafe class PtraceRelay
{
    private sealed class Request : IDisposable
    {
        public long Number;
        public int Pid;
        public nint Address, Data;
        public long ThenNumber; // 0, or a second request made once the first succeeded (see CallThen)
        public nint ThenAddress, ThenData;
        public long Result;
        public int Errno;
        public bool FirstFailed;
        public readonly Futex Done = new(); // 1 once the tracer thread has made the request

        public void Dispose() => Done.Dispose();
    }

    /// <summary>
    /// The workers' requests for the tracer thread. Adding is lock-free and waiting blocks at once
    /// (<see cref="Futex"/>): the runtime's blocking collections and events spin and yield first, which made
    /// 41,000 sched_yield calls in a 100-process restore on two cores.
    /// </summary>
    private sealed class RequestQueue : IDisposable
    {
        private readonly ConcurrentQueue<Request> _requests = new();
        private readonly Futex _added = new(); // counts additions and the completion: what the tracer thread waits on
        private volatile bool _completed;

        public void Add(Request request)
        {
            _requests.Enqueue(request);
            _added.Increment();
        }

        public void CompleteAdding()
        {
            _completed = true;
            _added.Increment();
        }

        /// <summary>The next request, or null once every worker has finished and the queue is empty.</summary>
        public Request? Take()
        {
            while (true)
            {
                int seen = _added.Value;
                if (_requests.TryDequeue(out Request? request)) return request;
                if (_completed && _requests.IsEmpty) return null;
                _added.WaitWhile(seen);
            }
        }

        public void Dispose() => _added.Dispose();
    }

    [ThreadStatic] private static RequestQueue? t_relay; // set on a worker: where its requests go
    [ThreadStatic] private static Request? t_request;

    /// <summary>ptrace(2), made on the tracer thread whichever thread asks; returns its result and errno (0 when it succeeded).</summary>
    public static long Call(long request, int pid, nint address, nint data, out int errno) =>
        CallThen(request, address, data, 0, 0, 0, pid, out errno, out _);

    /// <summary>
    /// Two requests to one task, the second (<paramref name="thenRequest"/>, skipped when 0) made only once the
    /// first succeeded: one hand-over to the tracer thread for both (setting an injected call's registers and
    /// resuming the task is most of a restore's ptrace traffic). Returns the result and errno of the request
    /// that failed, or of the last one; <paramref name="firstFailed"/> says which.
    /// </summary>
    public static long CallThen(long request, nint address, nint data, long thenRequest, nint thenAddress, nint thenData,
        int pid, out int errno, out bool firstFailed)
    {
        RequestQueue? relay = t_relay;
        if (relay is null) return Make(request, address, data, thenRequest, thenAddress, thenData, pid, out errno, out firstFailed);
        Request asked = t_request ??= new Request();
        (asked.Number, asked.Pid, asked.Address, asked.Data) = (request, pid, address, data);
        (asked.ThenNumber, asked.ThenAddress, asked.ThenData) = (thenRequest, thenAddress, thenData);
        asked.Done.Set(0);
        relay.Add(asked);
        asked.Done.WaitWhile(0);
        (errno, firstFailed) = (asked.Errno, asked.FirstFailed);
        return asked.Result;
    }

    // On the tracer thread.
    private static long Make(long request, nint address, nint data, long thenRequest, nint thenAddress, nint thenData,
        int pid, out int errno, out bool firstFailed)
    {
        long result = ptrace(request, pid, address, data);
        errno = result == -1 ? LastErrno : 0;
        firstFailed = result == -1;
        if (firstFailed || thenRequest == 0) return result;
        result = ptrace(thenRequest, pid, thenAddress, thenData);
        errno = result == -1 ? LastErrno : 0;
        return result;
    }

    /// <summary>
    /// Runs <paramref name="work"/> for every item on up to <paramref name="workers"/> threads, the items
    /// taken in order; an item whose <paramref name="after"/> names an earlier item (its index) starts
    /// only once that one is done. Serves the workers' ptrace requests meanwhile. After a failure no
    /// new item starts; the items under way finish, then the first failure is thrown with its item.
    /// Must be called on the tracer thread.
    /// </summary>
    public static void RunConcurrently<T>(IReadOnlyList<T> items, int workers, Action<T> work, Func<int, int>? after = null)
    {
        if (t_relay is not null) throw new InvalidOperationException("RunConcurrently is called on the tracer thread, not on one of its workers");
        using var relay = new RequestQueue();
        var done = items.Select(_ => new ManualResetEventSlim(false, spinCount: 0)).ToArray();
        int next = -1, running = Math.Min(workers, items.Count);
        Exception? failure = null;
        int failedIndex = -1;
        object failureLock = new();
        void Worker()
        {
            t_relay = relay;
            try
            {
                int index;
                while (Volatile.Read(ref failure) is null && (index = Interlocked.Increment(ref next)) < items.Count)
                {
                    try
                    {
                        int dependency = after?.Invoke(index) ?? -1;
                        if (dependency >= 0) done[dependency].Wait();
                        if (Volatile.Read(ref failure) is not null) break;
                        work(items[index]);
                    }
                    catch (Exception e)
                    {
                        lock (failureLock)
                        {
                            if (failure is null) (failure, failedIndex) = (e, index);
                        }
                    }
                    finally
                    {
                        done[index].Set();
                    }
                }
            }
            finally
            {
                t_relay = null;
                t_request?.Dispose();
                t_request = null;
                if (Interlocked.Decrement(ref running) == 0) relay.CompleteAdding();
            }
        }
        if (running == 0) return;
        WorkerPool pool = WorkerPool.OfSize(workers);
        pool.Start(Worker, running);
        while (relay.Take() is { } request)
        {
            request.Result = Make(request.Number, request.Address, request.Data, request.ThenNumber, request.ThenAddress, request.ThenData,
                request.Pid, out request.Errno, out request.FirstFailed);
            request.Done.Set(1);
        }
        pool.WaitAll(); // none still touches the queue when it is disposed
        foreach (ManualResetEventSlim e in done) e.Dispose();
        if (failure is not null) throw new ConcurrentItemException(failedIndex, failure);
    }
}

/// <summary>The first failure of <see cref="PtraceRelay.RunConcurrently"/>, with the index of its item.</summary>
public sealed class ConcurrentItemException(int index, Exception inner) : Exception(inner.Message, inner)
{
    public int Index { get; } = index;
}
