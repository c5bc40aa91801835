using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Descriptor tables and fs information shared by processes (issue 10): the FILE_TABLE objref of
/// TASK_OBJECTS used by two processes (the second by OBJREF), and the FS record (114) with OBJREF {Fs}
/// for the later sharers. Round trip, and every lie refused naming the record and its offset.
/// </summary>
public class SharedTablesImageTests
{
    private const int FsRef = 12;
    private const uint LeaderUmask = 0x12; // V3Image's TASK.Umask

    private static FsRecord Fs(int objRef = FsRef, uint umask = LeaderUmask) => new() { ObjRef = objRef, Umask = umask };

    private static ObjrefRecord FsObjref(int objRef = FsRef, ObjectType type = ObjectType.Fs) => new() { ObjectType = type, ObjRef = objRef };

    /// <summary>A leader and a child that share the leader's table (V3Image's second process) and, with the defaults, its fs information.</summary>
    private static V3Image Sharing(Action<ImageWriter>? leaderFs = null, Action<ImageWriter>? childFs = null, string cwd = V3Image.Cwd, uint umask = LeaderUmask) => new()
    {
        Threads = 2, SecondProcess = true, ChildCwd = cwd, ChildUmask = umask,
        LeaderFs = leaderFs ?? (w => w.Write(Fs())), ChildFs = childFs ?? (w => w.Write(FsObjref())),
    };

    private static ImageFormatException Expect(byte[] image, RecordType record, int nth = 0)
    {
        long offset = V3Image.OffsetOf(image, record, nth);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == record && error.Offset == offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }

    [Fact]
    public void ASharedTableAndSharedFsRoundTripAsOneInstanceEach()
    {
        ImageModel model = V3Image.Read(Sharing().Build());
        ProcessImage leader = model.Processes[0], child = model.Processes[1];
        Assert.Same(leader.FileTable, child.FileTable);
        Assert.Equal(V3Image.FileTableRef, child.FileTable.ObjRef);
        FsImage fs = Assert.IsType<FsImage>(leader.SharedFs);
        Assert.Same(fs, child.SharedFs);
        Assert.Equal((FsRef, V3Image.LeaderPid, V3Image.Cwd, V3Image.Root, LeaderUmask), (fs.ObjRef, fs.DefinedBy, fs.Cwd, fs.Root, fs.Record.Umask));
        // Without FS records each process has its own fs information.
        ImageModel own = V3Image.Read(new V3Image { SecondProcess = true }.Build());
        Assert.All(own.Processes, p => Assert.Null(p.SharedFs));
    }

    [Fact]
    public void AnFsRecordWhoseUmaskIsNotTheTasksIsRefused()
    {
        byte[] image = Sharing(leaderFs: w => w.Write(Fs(umask: 0x3f))).Build();
        Assert.Contains($"fs objref {FsRef} has umask 077, the TASK record of process {V3Image.LeaderPid} 022", Expect(image, RecordType.Fs).Message);
    }

    [Theory]
    [InlineData("/elsewhere", LeaderUmask)]
    [InlineData(V3Image.Cwd, 0x3fu)]
    public void ASharerWithAnotherCwdOrUmaskIsRefused(string cwd, uint umask)
    {
        byte[] image = Sharing(cwd: cwd, umask: umask).Build();
        var error = Expect(image, RecordType.Objref, ObjrefIndexOfChildFs);
        Assert.Contains($"process {V3Image.ChildPid} shares fs objref {FsRef} with process {V3Image.LeaderPid} but has cwd {cwd}", error.Message);
    }

    [Fact]
    public void AnObjrefToAnUndefinedFsIsRefused()
    {
        byte[] image = Sharing(childFs: w => w.Write(FsObjref(77))).Build();
        Assert.Contains("refers to fs objref 77, which no earlier FS record defines", Expect(image, RecordType.Objref, ObjrefIndexOfChildFs).Message);
    }

    [Fact]
    public void AnObjrefToAnotherKindOfObjectWhereTheFsBelongsIsRefused()
    {
        byte[] image = Sharing(childFs: w => w.Write(FsObjref(V3Image.FileTableRef, ObjectType.FileTable))).Build();
        Assert.Contains("where only an fs object (FS or OBJREF {Fs}) may be", Expect(image, RecordType.Objref, ObjrefIndexOfChildFs).Message);
        byte[] misnamed = Sharing(childFs: w => w.Write(FsObjref(V3Image.FileTableRef))).Build();
        Assert.Contains($"refers to fs objref {V3Image.FileTableRef}, which no earlier FS record defines (it is a FileTable)", Expect(misnamed, RecordType.Objref, ObjrefIndexOfChildFs).Message);
    }

    [Fact]
    public void AnFsUsedByOneProcessOnlyIsRefused()
    {
        byte[] image = Sharing(childFs: _ => { }, cwd: "/tmp", umask: 0).Build();
        Assert.Contains($"fs objref {FsRef} is used by process {V3Image.LeaderPid} only", Expect(image, RecordType.Fs).Message);
    }

    [Fact]
    public void AnFsObjrefThatNamesAnotherObjectIsRefused()
    {
        byte[] image = Sharing(leaderFs: w => w.Write(Fs(objRef: V3Image.MmRef))).Build();
        // The FS record comes before TASK_OBJECTS: it takes the objref first, and the MM that follows is refused.
        Assert.Contains($"Mm objref {V3Image.MmRef} is defined again: the objref already names a Fs", Expect(image, RecordType.Mm).Message);
        byte[] twice = Sharing(childFs: w => w.Write(Fs())).Build();
        Assert.Contains($"Fs objref {FsRef} is already defined (as a Fs)", Expect(twice, RecordType.Fs, 1).Message);
    }

    [Fact]
    public void AnFsRecordAnywhereElseIsRefused()
    {
        byte[] image = new V3Image { SecondProcess = true, ChildSectionEnd = w => w.Write(Fs()) }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.Fs, error.Record);
        Assert.Equal(V3Image.OffsetOf(image, RecordType.Fs), error.Offset);
    }

    // The child's OBJREF {Fs}: the leader's threads write four OBJREFs each (Threads - 1 = 1 thread), then the child's.
    private const int ObjrefIndexOfChildFs = 4;
}
