using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// Process-wide objects a process's TASK_OBJECTS may take from an earlier process (an OBJREF): the descriptor
/// table (clone CLONE_FILES), the address space (CLONE_VM without CLONE_THREAD) and with it the signal
/// handlers (CLONE_SIGHAND, which clone allows only with CLONE_VM). The signal state (signal_struct: pending
/// queue, timers, terminal) is shared by threads only (CLONE_THREAD), and handlers without memory by no clone:
/// an image that says otherwise describes no process tree and is refused here.
/// </summary>
public static partial class ImageModelReader
{
    private static void CheckSharedWithEarlierProcesses(IEnumerable<ProcessBuilder> earlier, int pid, MemoryImage memory, SignalHandlersImage handlers, SignalImage signal, long offset)
    {
        foreach (ProcessBuilder other in earlier)
        {
            if (ReferenceEquals(other.Signal, signal))
                throw new ImageFormatException(RecordType.TaskObjects, offset,
                    $"process {pid} uses the signal state of process {other.Task.Pid}: only threads of one process share it (CLONE_THREAD)");
            if (ReferenceEquals(other.Handlers, handlers) && !ReferenceEquals(other.Memory, memory))
                throw new ImageFormatException(RecordType.TaskObjects, offset,
                    $"process {pid} shares the signal handlers (objref {handlers.ObjRef}) of process {other.Task.Pid} but not its memory: clone shares handlers only with memory (CLONE_SIGHAND requires CLONE_VM)");
        }
    }
}
