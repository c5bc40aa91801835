using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// The optional records that end a task's section (issue 10): JOB_CONTROL_STOP. Round trip, the
/// tree's "stopped" state, and every lie refused naming the record and its offset.
/// </summary>
public class V3TreeStateImageTests
{
    private static JobControlStopRecord Stop(int pid, int signal = JobControlStopRecord.SIGTSTP, int collected = 1) =>
        new() { Pid = pid, StopSignal = signal, ReportCollected = collected };

    [Fact]
    public void AStoppedProcessRoundTripsAndIsStoppedInTheTree()
    {
        byte[] bytes = new V3Image
        {
            Threads = 2, SecondProcess = true,
            TaskSectionEnd = (w, i) => { if (i == 0) w.Write(Stop(V3Image.LeaderPid, JobControlStopRecord.SIGSTOP, 0)); },
            ChildSectionEnd = w => w.Write(Stop(V3Image.ChildPid)),
        }.Build();
        ImageModel model = V3Image.Read(bytes);
        JobControlStopRecord root = model.Processes[0].JobControlStop!.Value, child = model.Processes[1].JobControlStop!.Value;
        Assert.Equal((V3Image.LeaderPid, 19, 0), (root.Pid, root.StopSignal, root.ReportCollected));
        Assert.Equal((V3Image.ChildPid, 20, 1), (child.Pid, child.StopSignal, child.ReportCollected));
        Assert.Equal(["stopped", "stopped"], ProcessTree.Of(model).Select(e => e.State));
        Assert.Null(V3Image.Read(new V3Image { SecondProcess = true }.Build()).Processes[1].JobControlStop);
    }

    [Theory]
    [InlineData(9)]
    [InlineData(0)]
    [InlineData(23)]
    [InlineData(-19)]
    public void AStopSignalThatIsNoJobControlStopIsRefused(int signal)
    {
        byte[] image = new V3Image { SecondProcess = true, ChildSectionEnd = w => w.Write(Stop(V3Image.ChildPid, signal)) }.Build();
        var error = Expect(image, V3Image.OffsetOf(image, RecordType.JobControlStop));
        Assert.Contains($"stopped by signal {signal}, which is not a job-control stop signal", error.Message);
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(-1, 0)]
    [InlineData(1, 5)]
    public void AReportFlagOtherThan0Or1OrAReservedFieldIsRefused(int collected, int reserved)
    {
        byte[] image = new V3Image { SecondProcess = true, ChildSectionEnd = w => w.Write(Stop(V3Image.ChildPid, collected: collected) with { }) }.Build();
        V3Image.Patch<JobControlStopRecord>(image, 0, r => { r.Reserved = reserved; return r; });
        var error = Expect(image, V3Image.OffsetOf(image, RecordType.JobControlStop));
        Assert.Contains($"ReportCollected {collected} (0 or 1) and Reserved {reserved} (0)", error.Message);
    }

    [Fact]
    public void ARecordNamingAnotherProcessIsRefused()
    {
        byte[] image = new V3Image { SecondProcess = true, ChildSectionEnd = w => w.Write(Stop(4242)) }.Build();
        Assert.Contains($"names process 4242 in the section of task {V3Image.ChildPid}", Expect(image, V3Image.OffsetOf(image, RecordType.JobControlStop)).Message);
    }

    [Fact]
    public void ARecordInAThreadsSectionIsRefused()
    {
        byte[] image = new V3Image { Threads = 2, TaskSectionEnd = (w, i) => { if (i == 1) w.Write(Stop(V3Image.Tid(1), collected: 0)); } }.Build();
        Assert.Contains("it belongs at the end of its thread group leader's section", Expect(image, V3Image.OffsetOf(image, RecordType.JobControlStop)).Message);
    }

    [Fact]
    public void TheRootsStopCollectedByAParentOutsideTheImageIsRefused()
    {
        byte[] image = new V3Image { Threads = 1, TaskSectionEnd = (w, i) => w.Write(Stop(V3Image.LeaderPid, collected: 1)) }.Build();
        Assert.Contains($"says the parent of the root process {V3Image.LeaderPid} collected its stop", Expect(image, V3Image.OffsetOf(image, RecordType.JobControlStop)).Message);
    }

    [Fact]
    public void TwoRecordsForOneProcessAreRefusedAtTheSecond()
    {
        byte[] image = new V3Image { SecondProcess = true, ChildSectionEnd = w => { w.Write(Stop(V3Image.ChildPid)); w.Write(Stop(V3Image.ChildPid)); } }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.JobControlStop, error.Record);
    }

    private static ImageFormatException Expect(byte[] image, long offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == RecordType.JobControlStop && error.Offset == offset,
            $"expected the error at JobControlStop offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
