using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// The optional records that end a task's section (issue 10): JOB_CONTROL_STOP, CHILD_SUBREAPER,
/// PARENT_DEATH_SIGNAL. Round trip, the tree's "stopped" state, and every lie refused naming the record
/// and its offset.
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

    [Fact]
    public void ASubreaperAndParentDeathSignalsRoundTripInTheirOrder()
    {
        byte[] bytes = new V3Image
        {
            Threads = 3, SecondProcess = true,
            TaskSectionEnd = (w, i) =>
            {
                if (i == 0) w.Write(new ChildSubreaperRecord { Pid = V3Image.LeaderPid });
                if (i == 0) w.Write(new ParentDeathSignalRecord { Tid = V3Image.LeaderPid, Signal = 15 });
                if (i == 2) w.Write(new ParentDeathSignalRecord { Tid = V3Image.Tid(2), Signal = 64 });
            },
            ChildSectionEnd = w =>
            {
                w.Write(Stop(V3Image.ChildPid));
                w.Write(new ChildSubreaperRecord { Pid = V3Image.ChildPid });
                w.Write(new ParentDeathSignalRecord { Tid = V3Image.ChildPid, Signal = 1 });
            },
        }.Build();
        ImageModel model = V3Image.Read(bytes);
        Assert.Equal([true, true], model.Processes.Select(p => p.ChildSubreaper));
        Assert.Equal([15, 0, 64], model.Processes[0].Threads.Select(t => t.ParentDeathSignal));
        Assert.Equal(1, model.Processes[1].Threads[0].ParentDeathSignal);
        Assert.NotNull(model.Processes[1].JobControlStop);
        ImageModel plain = V3Image.Read(new V3Image().Build());
        Assert.False(plain.Processes[0].ChildSubreaper);
        Assert.All(plain.Processes[0].Threads, t => Assert.Equal(0, t.ParentDeathSignal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65)]
    [InlineData(-9)]
    public void AParentDeathSignalOutside1To64IsRefused(int signal)
    {
        byte[] image = new V3Image { Threads = 1, TaskSectionEnd = (w, i) => w.Write(new ParentDeathSignalRecord { Tid = V3Image.LeaderPid, Signal = signal }) }.Build();
        var error = Expect(image, V3Image.OffsetOf(image, RecordType.ParentDeathSignal), RecordType.ParentDeathSignal);
        Assert.Contains($"parent-death signal {signal} (1..64)", error.Message);
    }

    [Fact]
    public void AParentDeathSignalOfAnotherTaskIsRefused()
    {
        byte[] image = new V3Image { Threads = 2, TaskSectionEnd = (w, i) => { if (i == 1) w.Write(new ParentDeathSignalRecord { Tid = V3Image.LeaderPid, Signal = 9 }); } }.Build();
        Assert.Contains($"names task {V3Image.LeaderPid} in the section of task {V3Image.Tid(1)}", Expect(image, V3Image.OffsetOf(image, RecordType.ParentDeathSignal), RecordType.ParentDeathSignal).Message);
    }

    [Theory]
    [InlineData(V3Image.LeaderPid + 1, 0, 1)] // in a thread's section
    [InlineData(4242, 0, 0)]                  // another process
    [InlineData(V3Image.LeaderPid, 1, 0)]     // Reserved
    public void ASubreaperRecordThatIsNotItsLeadersIsRefused(int pid, int reserved, int index)
    {
        byte[] image = new V3Image { Threads = 2, TaskSectionEnd = (w, i) => { if (i == index) w.Write(new ChildSubreaperRecord { Pid = pid, Reserved = reserved }); } }.Build();
        Assert.Contains("it belongs at the end of its thread group leader's section", Expect(image, V3Image.OffsetOf(image, RecordType.ChildSubreaper), RecordType.ChildSubreaper).Message);
    }

    [Fact]
    public void RecordsOutOfOrderAreRefused()
    {
        // PARENT_DEATH_SIGNAL is last: a CHILD_SUBREAPER after it is where the next task's TASK belongs.
        byte[] image = new V3Image
        {
            Threads = 1, SecondProcess = true,
            TaskSectionEnd = (w, i) => { w.Write(new ParentDeathSignalRecord { Tid = V3Image.LeaderPid, Signal = 9 }); w.Write(new ChildSubreaperRecord { Pid = V3Image.LeaderPid }); },
        }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal((RecordType?)RecordType.ChildSubreaper, error.Record);
    }

    private static ImageFormatException Expect(byte[] image, long offset, RecordType record = RecordType.JobControlStop)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == record && error.Offset == offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
