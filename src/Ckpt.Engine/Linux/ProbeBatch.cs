using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>
/// The read-only system calls a checkpoint injects into one stopped thread (the "get" calls of
/// InjectedTaskState, InjectedProbes and the thread's own state), added first and made together by
/// <see cref="Run"/>; their results and outputs are read afterwards. With a <see cref="ProbeRoutine"/>
/// the calls cost one stop per round (an injected call alone costs two, each a round trip through the
/// scheduler: a tree of a hundred processes makes about two thousand); without one they are injected
/// one by one, with the same results. No call takes another's result, and none changes the task: the
/// order of the calls only matters for the order in which the callers judge the results.
/// A call's output is its own part of the session's scratch memory; entries and outputs share the
/// scratch, and a call that does not fit any more makes the calls before it a round of their own.
/// </summary>
public sealed class ProbeBatch(RemoteSyscall remote, ProbeRoutine? routine)
{
    /// <summary>One entry as the routine reads it: number, six arguments, result (8 bytes each).</summary>
    public const int EntrySize = 64;
    private const int ResultOffset = 56;

    private readonly record struct Call(string Name, long Number, ulong[] Arguments, int OutputOffset, int OutputBytes);

    private readonly List<Call> _calls = [];
    private readonly List<long> _results = [];
    private readonly List<byte[]> _outputs = [];
    private int _roundStart; // the first call not made yet
    private int _outputsUsed; // bytes at the top of the scratch taken by the round's outputs

    private readonly int _pid = remote.Pid;

    /// <summary>Adds a call without output; returns its handle for <see cref="Result"/>.</summary>
    public int Add(string name, long number, params ulong[] arguments) => Add(name, number, 0, _ => arguments);

    /// <summary>Adds a call that writes up to <paramref name="outputBytes"/> bytes at the address its arguments are made with.</summary>
    public int Add(string name, long number, int outputBytes, Func<ulong, ulong[]> arguments)
    {
        int aligned = (outputBytes + 15) & ~15;
        if (aligned + EntrySize > RemoteSyscall.ScratchSize) throw new ArgumentException($"{name}: {outputBytes} bytes of output do not fit the scratch memory");
        if ((_calls.Count - _roundStart + 1) * EntrySize + _outputsUsed + aligned > RemoteSyscall.ScratchSize) RunRound();
        _outputsUsed += aligned;
        int offset = RemoteSyscall.ScratchSize - _outputsUsed;
        ulong[] values = arguments(remote.Scratch + (ulong)offset);
        if (values.Length > 6) throw new ArgumentException($"{name}: a system call takes at most 6 arguments");
        _calls.Add(new Call(name, number, values, offset, outputBytes));
        return _calls.Count - 1;
    }

    /// <summary>Makes every call added since the last run.</summary>
    public void Run()
    {
        if (_roundStart < _calls.Count) RunRound();
    }

    /// <summary>
    /// Starts the calls added as one run of the routine and returns at once (the task runs; <see cref="Finish"/>
    /// collects them), where there is a routine and nothing was run yet. False: nothing started, <see cref="Run"/> does it.
    /// </summary>
    public bool TryStart()
    {
        if (routine is null || _roundStart != 0 || _calls.Count == 0) return false;
        StartRound();
        return true;
    }

    /// <summary>The calls <see cref="TryStart"/> started: their results and outputs.</summary>
    public void Finish() => FinishRound();

    /// <summary>rax of a call: its result, or a negative errno.</summary>
    public long Result(int call) => _results[call];

    /// <summary>The result of a call that must succeed; a failure throws a <see cref="SyscallException"/> naming it.</summary>
    public long Checked(int call)
    {
        long result = _results[call];
        if (result < 0 && result > -4096) throw new SyscallException(_calls[call].Name, (int)-result, _pid, "injected into the task");
        return result;
    }

    /// <summary>What the call wrote at its output address (read once the call was made).</summary>
    public T Output<T>(int call) where T : unmanaged => MemoryMarshal.Read<T>(_outputs[call]);

    private void RunRound()
    {
        if (routine is not null)
        {
            StartRound();
            FinishRound();
            return;
        }
        var round = CollectionsMarshal.AsSpan(_calls)[_roundStart..];
        bool anyOutput = false;
        foreach (Call call in round)
        {
            ulong[] a = call.Arguments;
            _results.Add(remote.CallRaw(call.Number, Arg(a, 0), Arg(a, 1), Arg(a, 2), Arg(a, 3), Arg(a, 4), Arg(a, 5)));
            anyOutput |= call.OutputBytes > 0;
        }
        EndRound(anyOutput ? remote.ReadScratch(0, RemoteSyscall.ScratchSize) : []);
    }

    // The routine's run over the calls of this round: the entries into the scratch, then the task runs.
    private void StartRound()
    {
        var round = CollectionsMarshal.AsSpan(_calls)[_roundStart..];
        var entries = new byte[round.Length * EntrySize];
        for (int i = 0; i < round.Length; i++)
        {
            var entry = MemoryMarshal.Cast<byte, ulong>(entries.AsSpan(i * EntrySize, EntrySize));
            entry[0] = (ulong)round[i].Number;
            round[i].Arguments.CopyTo(entry[1..]);
        }
        remote.WriteScratch(0, entries);
        remote.StartRoutine(routine!, remote.Scratch, round.Length);
    }

    private void FinishRound()
    {
        int count = _calls.Count - _roundStart;
        int made = remote.FinishRoutine(routine!, count);
        if (made != count) throw new InvalidOperationException($"task {_pid}: the batch routine reports {made} of {count} calls made");
        byte[] scratch = remote.ReadScratch(0, RemoteSyscall.ScratchSize);
        for (int i = 0; i < count; i++) _results.Add(BitConverter.ToInt64(scratch, i * EntrySize + ResultOffset));
        EndRound(scratch);
    }

    // The outputs of the round's calls from the scratch as read after them; the next round starts empty.
    private void EndRound(byte[] scratch)
    {
        foreach (Call call in CollectionsMarshal.AsSpan(_calls)[_roundStart..])
            _outputs.Add(call.OutputBytes > 0 ? scratch.AsSpan(call.OutputOffset, call.OutputBytes).ToArray() : []);
        _roundStart = _calls.Count;
        _outputsUsed = 0;
    }

    private static ulong Arg(ulong[] arguments, int i) => i < arguments.Length ? arguments[i] : 0;
}
