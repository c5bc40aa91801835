using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The optional records that end a task's section and tie the task to its parent and children beyond the
/// ids of the task table: JOB_CONTROL_STOP (a process stopped by job control).
/// </summary>
public static partial class ImageModelReader
{
    private static void ReadTreeState(ImageReader reader, TaskRecord task, ProcessBuilder process, bool isRoot)
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
