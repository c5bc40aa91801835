using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Process trees in format-3 images: a zombie's section (TASK with no threads, ZOMBIE) read into
/// ImageModel.Zombies and listed by ProcessTree; the tree order of the task table and a zombie's
/// records checked, each lie refused naming the record and its offset.
/// </summary>
public class V3TreeImageTests
{
    [Fact]
    public void AZombieRoundTripsWithItsExitStatusAndIsInTheTree()
    {
        ImageModel model = V3Image.Read(new V3Image { Threads = 2, SecondProcess = true, Zombie = true }.Build());
        Assert.Equal(3, model.Tree.ProcessCount);
        Assert.Equal(2, model.Processes.Count);
        ZombieImage zombie = Assert.Single(model.Zombies);
        Assert.Equal((V3Image.ZombiePid, V3Image.ZombieStatus, V3Image.LeaderPid), (zombie.Pid, zombie.ExitStatus, zombie.Task.Ppid));
        Assert.Equal(V3Image.LeaderPid, model.RootPid);

        IReadOnlyList<TreeEntry> tree = ProcessTree.Of(model);
        Assert.Equal([V3Image.LeaderPid, V3Image.ChildPid, V3Image.ZombiePid], tree.Select(e => e.Pid));
        Assert.Equal([0, 1, 1], tree.Select(e => e.Depth));
        TreeEntry dead = tree[2];
        Assert.Equal(("zombie", 0, (int?)V3Image.ZombieStatus), (dead.State, dead.Threads, dead.ExitStatus));
        Assert.Equal("exit 7", ProcessTree.DescribeExit(dead.ExitStatus!.Value));
        Assert.Equal("killed by signal 11 (core dumped)", ProcessTree.DescribeExit(0x8b));
    }

    [Theory]
    [InlineData(0x7f)]          // the "stopped" marker, not a way to end
    [InlineData(0x10000)]       // bits above the exit code
    [InlineData(0x0109)]        // an exit code and a signal at once
    [InlineData(-1)]
    public void AZombieExitStatusThatIsNoWaitStatusIsRefused(int status)
    {
        byte[] image = new V3Image { Zombie = true }.Build();
        int offset = V3Image.Patch<ZombieRecord>(image, 0, z => { z.ExitStatus = status; return z; });
        var error = Expect(image, RecordType.Zombie, offset);
        Assert.Contains($"exit status 0x{status:x}", error.Message);
    }

    [Fact]
    public void AZombieRecordOfAnotherPidIsRefused()
    {
        byte[] image = new V3Image { Zombie = true }.Build();
        int offset = V3Image.Patch<ZombieRecord>(image, 0, z => { z.Pid = 4242; return z; });
        Assert.Contains($"zombie 4242 in the section of task {V3Image.ZombiePid}", Expect(image, RecordType.Zombie, offset).Message);
    }

    [Fact]
    public void AZombieTaskThatDisagreesWithTheTaskTableIsRefused()
    {
        byte[] image = new V3Image { Zombie = true }.Build();
        int offset = V3Image.Patch<TaskRecord>(image, 3, t => { t.Sid = 1; return t; }); // the three threads' TASKs come first
        Assert.Contains("zombie section of task 6100", Expect(image, RecordType.Task, offset).Message);
    }

    [Fact]
    public void AProcessWhoseParentIsNotEarlierInTheTableIsRefused()
    {
        byte[] image = new V3Image { Threads = 1, Zombie = true }.Build();
        int offset = V3Image.Patch<TaskIdsRecord>(image, 1, t => { t.Ppid = 4242; return t; });
        Assert.Contains("process 6100 has parent 4242, which is not a process earlier in the task table", Expect(image, RecordType.TaskIds, offset).Message);
    }

    [Fact]
    public void ALiveLeaderWithoutThreadsIsReadAsAZombieAndRefusedAtItsNextRecord()
    {
        byte[] image = new V3Image { Threads = 1 }.Build();
        V3Image.Patch<TaskRecord>(image, 0, t => { t.ThreadCount = 0; return t; });
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.String, error.Record);
        Assert.Equal(V3Image.OffsetOf(image, RecordType.String), error.Offset);
    }

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
