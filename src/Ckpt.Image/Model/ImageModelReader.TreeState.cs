using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The optional records that end a task's section and tie the task to its parent and children beyond the
/// ids of the task table, in this order: JOB_CONTROL_STOP (a process stopped by job control) and
/// CHILD_SUBREAPER (leaders only), PARENT_DEATH_SIGNAL (any task).
/// </summary>
public static partial class ImageModelReader
{
    private static void ReadTreeState(ImageReader reader, TaskRecord task, ProcessBuilder process, bool isRoot)
    {
        ReadJobControlStop(reader, task, process, isRoot);
        if (reader.PeekType() == RecordType.ChildSubreaper)
        {
            var subreaper = Next<ChildSubreaperRecord>(reader);
            if (subreaper.Pid != task.Pid || task.Pid != task.Tgid || subreaper.Reserved != 0)
                throw Error(reader, RecordType.ChildSubreaper, $"names process {subreaper.Pid} (Reserved {subreaper.Reserved}) in the section of task {task.Pid} (tgid {task.Tgid}): it belongs at the end of its thread group leader's section, Reserved 0");
            process.ChildSubreaper = true;
        }
        if (reader.PeekType() == RecordType.ParentDeathSignal)
        {
            var death = Next<ParentDeathSignalRecord>(reader);
            if (death.Tid != task.Pid)
                throw Error(reader, RecordType.ParentDeathSignal, $"names task {death.Tid} in the section of task {task.Pid}");
            if (death.Signal is < 1 or > 64)
                throw Error(reader, RecordType.ParentDeathSignal, $"task {death.Tid} has parent-death signal {death.Signal} (1..64)");
            process.Threads[^1] = process.Threads[^1] with { ParentDeathSignal = death.Signal };
        }
    }

    private static void ReadJobControlStop(ImageReader reader, TaskRecord task, ProcessBuilder process, bool isRoot)
    {
        if (reader.PeekType() != RecordType.JobControlStop) return;
        var stop = Next<JobControlStopRecord>(reader);
        if (stop.Pid != task.Pid || task.Pid != task.Tgid)
            throw Error(reader, RecordType.JobControlStop, $"names process {stop.Pid} in the section of task {task.Pid} (tgid {task.Tgid}): it belongs at the end of its thread group leader's section");
        if (stop.StopSignal is not (JobControlStopRecord.SIGSTOP or JobControlStopRecord.SIGTSTP or JobControlStopRecord.SIGTTIN or JobControlStopRecord.SIGTTOU))
            throw Error(reader, RecordType.JobControlStop, $"process {stop.Pid} stopped by signal {stop.StopSignal}, which is not a job-control stop signal (SIGSTOP 19, SIGTSTP 20, SIGTTIN 21, SIGTTOU 22)");
        if (stop.ReportCollected is not (0 or 1) || stop.Reserved != 0)
            throw Error(reader, RecordType.JobControlStop, $"process {stop.Pid} has ReportCollected {stop.ReportCollected} (0 or 1) and Reserved {stop.Reserved} (0)");
        if (isRoot && stop.ReportCollected == 1)
            throw Error(reader, RecordType.JobControlStop, $"says the parent of the root process {stop.Pid} collected its stop, but the root's parent is not in the image");
        process.JobControlStop = stop;
    }
}
