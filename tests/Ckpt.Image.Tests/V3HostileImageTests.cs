using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Format-3 images with one lie each, read through ImageModelReader: the error is an
/// ImageFormatException whose Record and Offset name the lying record and whose message says
/// what is wrong; never another exception, never an allocation sized by the lie.
/// </summary>
public unsafe class V3HostileImageTests
{
    // ---- the tree and the task table ----

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(ImageLimits.MaxTasks + 1)]
    [InlineData(int.MaxValue)]
    public void TreeTaskCountOutOfRangeIsRefused(int taskCount)
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<TreeRecord>(image, 0, t => { t.TaskCount = taskCount; return t; });
        var error = Expect(image, RecordType.Tree, offset);
        Assert.Contains($"{taskCount} tasks", error.Message);
    }

    [Fact]
    public void MoreProcessesThanTasksIsRefused()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TreeRecord>(image, 0, t => { t.ProcessCount = 4; return t; });
        Assert.Contains("3 tasks in 4 processes", Expect(image, RecordType.Tree, offset).Message);
    }

    [Fact]
    public void ProcessCountThatDisagreesWithTheLeadersIsRefusedAtTheTree()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TreeRecord>(image, 0, t => { t.ProcessCount = 2; return t; });
        Assert.Contains("1 thread group leaders", Expect(image, RecordType.Tree, offset).Message);
    }

    [Fact]
    public void TaskTableShorterThanTheTreeSaysIsRefused()
    {
        // TREE says 3 tasks, 2 TASK_IDS follow, then the first TASK.
        byte[] image = new V3Image { Threads = 2 }.Build();
        V3Image.Patch<TreeRecord>(image, 0, t => { t.TaskCount = 3; return t; });
        var error = Expect(image, RecordType.Task, V3Image.OffsetOf(image, RecordType.Task));
        Assert.Contains("3 tasks", error.Message);
        Assert.Contains("2", error.Message);
    }

    [Fact]
    public void TaskTableLongerThanTheTreeSaysIsRefused()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        V3Image.Patch<TreeRecord>(image, 0, t => { t.TaskCount = 2; return t; });
        var error = Expect(image, RecordType.TaskIds, V3Image.OffsetOf(image, RecordType.TaskIds, 2));
        Assert.Contains("2 tasks", error.Message);
    }

    [Fact]
    public void DuplicatePidInTheTaskTableIsRefused()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TaskIdsRecord>(image, 2, t => { t.Pid = V3Image.Tid(1); t.NamespacePids[0] = t.Pid; return t; });
        Assert.Contains($"task {V3Image.Tid(1)} appears twice", Expect(image, RecordType.TaskIds, offset).Message);
    }

    [Theory]
    [InlineData(2)]   // its leader is a later entry
    [InlineData(9)]   // its leader is not in the table at all
    public void ThreadWhoseLeaderIsNotEarlierInTheTableIsRefused(int leaderIndex)
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TaskIdsRecord>(image, 1, t => { t.Tgid = V3Image.Tid(leaderIndex); return t; });
        var error = Expect(image, RecordType.TaskIds, offset);
        Assert.Contains($"thread {V3Image.Tid(1)} of thread group {V3Image.Tid(leaderIndex)}", error.Message);
        Assert.Contains("leader", error.Message);
    }

    [Fact]
    public void ThreadBeforeItsLeaderIsRefused()
    {
        byte[] image = new V3Image { Threads = 2 }.Build();
        int offset = V3Image.Patch<TaskIdsRecord>(image, 0, _ => V3Image.TaskIds(1));
        V3Image.Patch<TaskIdsRecord>(image, 1, _ => V3Image.TaskIds(0));
        Assert.Contains("does not come before it", Expect(image, RecordType.TaskIds, offset).Message);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(0)]
    [InlineData(-1)]
    public void NestedPidNamespaceLevelsAreRefused(int levels)
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TaskIdsRecord>(image, 1, t => { t.NamespaceLevels = levels; t.NamespacePids[1] = 7; return t; });
        Assert.Contains($"{levels} pid namespace levels", Expect(image, RecordType.TaskIds, offset).Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void InvalidIdsInTheTaskTableAreRefused(int pid)
    {
        byte[] image = new V3Image { Threads = 2 }.Build();
        int offset = V3Image.Patch<TaskIdsRecord>(image, 1, t => { t.Pid = pid; return t; });
        Assert.Contains("invalid id", Expect(image, RecordType.TaskIds, offset).Message);
    }

    // ---- task sections ----

    [Fact]
    public void SectionOfATaskTheTableDoesNotNameNextIsRefused()
    {
        // A thread section of a tid the table does not have (where it expects 5001).
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TaskRecord>(image, 1, t => { t.Pid = 7777; return t; });
        Assert.Contains($"section of task 7777 (tgid {V3Image.LeaderPid}) where the task table has task {V3Image.Tid(1)}", Expect(image, RecordType.Task, offset).Message);
    }

    [Fact]
    public void SectionsOutOfTableOrderAreRefused()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<TaskRecord>(image, 1, t => { t.Pid = V3Image.Tid(2); return t; });
        Assert.Contains($"section of task {V3Image.Tid(2)}", Expect(image, RecordType.Task, offset).Message);
    }

    [Fact]
    public void ThreadRecordWithAnotherTidThanItsTaskIsRefused()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<ThreadRecord>(image, 1, t => { t.Tid = V3Image.Tid(2); return t; });
        Assert.Contains($"thread {V3Image.Tid(2)} in the section of task {V3Image.Tid(1)}", Expect(image, RecordType.Thread, offset).Message);
    }

    // ---- objrefs ----

    [Fact]
    public void ObjrefToAnObjectNeverWrittenIsRefused()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        V3Image.Patch<TaskObjectsRecord>(image, 1, u => { u.MmObjRef = 42; return u; });
        int offset = V3Image.Patch<ObjrefRecord>(image, 0, r => { r.ObjRef = 42; return r; });
        var error = Expect(image, RecordType.Objref, offset);
        Assert.Contains("Mm objref 42", error.Message);
        Assert.Contains("no earlier record defines", error.Message);
    }

    [Fact]
    public void ObjrefOfAnotherTypeThanAnnouncedIsRefused()
    {
        // TASK_OBJECTS announces mm 1, the OBJREF names the file table type.
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<ObjrefRecord>(image, 0, r => { r.ObjectType = ObjectType.FileTable; return r; });
        Assert.Contains("refers to FileTable 1 where Mm 1 was announced", Expect(image, RecordType.Objref, offset).Message);
    }

    [Fact]
    public void ObjrefToAnObjectOfAnotherTypeIsRefused()
    {
        // Both TASK_OBJECTS and OBJREF say mm 2, but objref 2 is the file table.
        byte[] image = new V3Image { Threads = 3 }.Build();
        V3Image.Patch<TaskObjectsRecord>(image, 1, u => { u.MmObjRef = V3Image.FileTableRef; return u; });
        int offset = V3Image.Patch<ObjrefRecord>(image, 0, r => { r.ObjRef = V3Image.FileTableRef; return r; });
        var error = Expect(image, RecordType.Objref, offset);
        Assert.Contains($"objref {V3Image.FileTableRef} is a FileTable, not a Mm", error.Message);
    }

    [Fact]
    public void ObjectDefinedTwiceIsRefused()
    {
        // The second thread writes the whole MM again with the leader's objref.
        var builder = new V3Image
        {
            Threads = 3,
            ThreadObjects = (self, writer, index) =>
            {
                if (index == 2) self.WriteMemory(writer, V3Image.MmRef);
                else writer.Write(new ObjrefRecord { ObjectType = ObjectType.Mm, ObjRef = V3Image.MmRef });
                writer.Write(new ObjrefRecord { ObjectType = ObjectType.FileTable, ObjRef = V3Image.FileTableRef });
                writer.Write(new ObjrefRecord { ObjectType = ObjectType.SignalHandlers, ObjRef = V3Image.HandlersRef });
                writer.Write(new ObjrefRecord { ObjectType = ObjectType.Signal, ObjRef = V3Image.SignalRef });
            },
        };
        byte[] image = builder.Build();
        var error = Expect(image, RecordType.Mm, V3Image.OffsetOf(image, RecordType.Mm, 1));
        Assert.Contains($"Mm objref {V3Image.MmRef} is defined again", error.Message);
    }

    [Fact]
    public void FileDefinedTwiceIsRefused()
    {
        var builder = new V3Image
        {
            Descriptors = (self, writer) =>
            {
                V3Image.WriteFile(writer, V3Image.LogRef, FileKind.Regular, V3Image.LogPath); // the mapping defined it already
                writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = V3Image.LogRef });
                writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.LogRef });
                writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
            },
        };
        byte[] image = builder.Build();
        var fileOffsets = V3Image.Records(image).Where(r => r.Type == RecordType.File).Select(r => r.Offset).ToList();
        var error = Expect(image, RecordType.File, fileOffsets[2]);
        Assert.Contains($"objref {V3Image.LogRef}", error.Message);
        Assert.Contains("already defined", error.Message);
    }

    [Fact]
    public void FileInsideAnObjectClaimingThatObjectsObjrefIsRefused()
    {
        // The library's FILE, read inside the MM with objref 1, says it is objref 1 too.
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<FileRecord>(image, 0, f => { f.ObjRef = V3Image.MmRef; return f; });
        Assert.Contains($"File objref {V3Image.MmRef} is already defined (as a Mm)", Expect(image, RecordType.File, offset).Message);
    }

    [Fact]
    public void DescriptorOfAFileNeverDefinedIsRefused()
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<FileDescriptorRecord>(image, 2, d => { d.FileObjRef = 99; return d; });
        Assert.Contains("file objref 99, which no earlier FILE record defines", Expect(image, RecordType.FileDescriptor, offset).Message);
    }

    [Fact]
    public void MappingOfAFileNeverDefinedIsRefused()
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<VmaRecord>(image, 1, v => { v.FileObjRef = 99; return v; });
        Assert.Contains("file objref 99", Expect(image, RecordType.Vma, offset).Message);
    }

    [Theory]
    [InlineData(0, VmaType.File, 0)]        // a file mapping without its file (found by the fuzzer)
    [InlineData(2, VmaType.SharedFile, 0)]
    [InlineData(1, VmaType.Anon, V3Image.LibraryRef)] // anonymous memory naming a file
    public void MappingWhoseFileDisagreesWithItsTypeIsRefused(int index, VmaType type, int fileObjRef)
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<VmaRecord>(image, index, v => { v.VmaType = type; v.FileObjRef = fileObjRef; return v; });
        Assert.Contains($"of type {type} has file objref {fileObjRef}", Expect(image, RecordType.Vma, offset).Message);
    }

    [Fact]
    public void MappingOfAnUnknownTypeIsRefused()
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<VmaRecord>(image, 1, v => { v.VmaType = (VmaType)77; return v; });
        Assert.Contains("unknown type 77", Expect(image, RecordType.Vma, offset).Message);
    }

    [Fact]
    public void DescriptorNamingAnObjectThatIsNotAFileIsRefused()
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<FileDescriptorRecord>(image, 0, d => { d.FileObjRef = V3Image.MmRef; return d; });
        Assert.Contains($"file objref {V3Image.MmRef}", Expect(image, RecordType.FileDescriptor, offset).Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void InvalidObjrefInTaskObjectsIsRefusedAtTaskObjects(int objRef)
    {
        // The third of the four objrefs, so the error must still name TASK_OBJECTS, not the MM or FILE_TABLE read before it.
        byte[] image = new V3Image { Threads = 2 }.Build();
        int offset = V3Image.Patch<TaskObjectsRecord>(image, 0, u => { u.SignalHandlersObjRef = objRef; return u; });
        Assert.Contains($"SignalHandlers objref {objRef} is not valid", Expect(image, RecordType.TaskObjects, offset).Message);
    }

    [Fact]
    public void ObjrefAnnouncedForAnotherObjectTypeIsRefused()
    {
        // TASK_OBJECTS of the leader gives the signal handlers the mm's objref: the handlers would define objref 1 again.
        byte[] image = new V3Image { Threads = 2 }.Build();
        V3Image.Patch<TaskObjectsRecord>(image, 0, u => { u.SignalHandlersObjRef = V3Image.MmRef; return u; });
        int offset = V3Image.Patch<SignalHandlersRecord>(image, 0, h => { h.ObjRef = V3Image.MmRef; return h; });
        var error = Expect(image, RecordType.SignalHandlers, offset);
        Assert.Contains($"objref {V3Image.MmRef} is defined again", error.Message);
    }

    [Fact]
    public void ThreadNotSharingItsLeadersMmIsRefused()
    {
        // Thread 1 has its own mm (objref 8, written in full) and the leader's other objects.
        var builder = new V3Image
        {
            Threads = 3,
            ThreadObjects = (self, writer, index) =>
            {
                if (index == 1)
                {
                    var mm = V3Image.Mm(8);
                    mm.VmaCount = 0;
                    writer.Write(mm);
                }
                else writer.Write(new ObjrefRecord { ObjectType = ObjectType.Mm, ObjRef = V3Image.MmRef });
                writer.Write(new ObjrefRecord { ObjectType = ObjectType.FileTable, ObjRef = V3Image.FileTableRef });
                writer.Write(new ObjrefRecord { ObjectType = ObjectType.SignalHandlers, ObjRef = V3Image.HandlersRef });
                writer.Write(new ObjrefRecord { ObjectType = ObjectType.Signal, ObjRef = V3Image.SignalRef });
            },
        };
        byte[] image = builder.Build();
        int offset = V3Image.Patch<TaskObjectsRecord>(image, 1, u => { u.MmObjRef = 8; return u; });
        var error = Expect(image, RecordType.TaskObjects, offset);
        Assert.Contains($"thread {V3Image.Tid(1)} does not share", error.Message);
        Assert.Contains($"leader {V3Image.LeaderPid}", error.Message);
    }

    // ---- counts ----

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(ImageLimits.MaxPendingSignals + 1)]
    [InlineData(int.MaxValue)]
    public void SharedPendingCountOutOfRangeIsRefused(int count)
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<SignalRecord>(image, 0, s => { s.PendingCount = count; return s; });
        Assert.Contains($"{count} pending signals", Expect(image, RecordType.Signal, offset).Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(ImageLimits.MaxPendingSignals + 1)]
    [InlineData(int.MaxValue)]
    public void ThreadPendingCountOutOfRangeIsRefusedAtTheThread(int count)
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<ThreadRecord>(image, 2, t => { t.PendingCount = count; return t; });
        Assert.Contains($"{count} pending signals", Expect(image, RecordType.Thread, offset).Message);
    }

    [Theory]
    [InlineData(RecordType.Signal)]
    [InlineData(RecordType.Thread)]
    public void PendingCountAtTheLimitWithoutTheRecordsAllocatesLittle(RecordType holder)
    {
        // 2^20 pending signals claimed, none there: refused at the first missing record, not by running out of memory.
        byte[] image = new V3Image { Threads = 2 }.Build();
        if (holder == RecordType.Signal) V3Image.Patch<SignalRecord>(image, 0, s => { s.PendingCount = ImageLimits.MaxPendingSignals; return s; });
        else V3Image.Patch<ThreadRecord>(image, 0, t => { t.PendingCount = ImageLimits.MaxPendingSignals; return t; });
        long before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("expected a SignalPending (604) record here", error.Message);
        Assert.InRange(allocated, 0, 8 << 20);
    }

    [Theory]
    [InlineData(65)]
    [InlineData(-1)]
    [InlineData(int.MaxValue)]
    public void SignalHandlersActionCountOutOfRangeIsRefused(int count)
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<SignalHandlersRecord>(image, 0, h => { h.ActionCount = count; return h; });
        Assert.Contains($"{count} actions (at most 64)", Expect(image, RecordType.SignalHandlers, offset).Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(ImageLimits.MaxVmas)]
    public void VmaCountThatLiesIsRefusedWithoutAHugeAllocation(int count)
    {
        byte[] image = new V3Image().Build();
        int offset = V3Image.Patch<MmRecord>(image, 0, m => { m.VmaCount = count; return m; });
        long before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 8 << 20);
        if (count < 0) Assert.Equal((RecordType.Mm, (long)offset), (error.Record, error.Offset));
    }

    // ---- truncation and damage ----

    [Fact]
    public void TruncationAtEveryRecordBoundaryIsAClearError()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        V3Image.Read(image); // whole, it reads
        foreach (var (type, offset, length) in V3Image.Records(image))
        {
            byte[] truncated = image[..offset];
            var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(truncated));
            Assert.Equal(offset, error.Offset);
            Assert.NotNull(error.Record);
            Assert.Contains("image ends before this record", error.Message);
        }
    }

    [Fact]
    public void TruncationInsideRecordsIsAClearError()
    {
        // Every 8 bytes and every byte of the header of each record (as HostileImageTests does for the sample).
        byte[] image = new V3Image { Threads = 3 }.Build();
        var lengths = new SortedSet<int>();
        for (int length = 0; length < image.Length; length += 8) lengths.Add(length);
        foreach (var (_, offset, _) in V3Image.Records(image))
            for (int b = 1; b < 16; b++) lengths.Add(offset + b);
        foreach (int length in lengths.Where(l => l < image.Length))
        {
            foreach (bool verify in new[] { true, false })
            {
                var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image[..length], verify));
                Assert.InRange(error.Offset, 0, length);
            }
        }
    }

    [Fact]
    public void BitFlipsAreDetected()
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        var random = new Random(30091);
        for (int trial = 0; trial < 2000; trial++)
        {
            byte[] damaged = (byte[])image.Clone();
            int bit = random.Next(damaged.Length * 8);
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(damaged));
            Assert.False(string.IsNullOrEmpty(error.Problem));
        }
    }

    // ---- registers and flags that cannot run (issue 13) ----

    [Theory]
    [InlineData(0xffff_ffff_8100_0000ul)]
    [InlineData(0x0000_8000_0000_0000ul)]
    [InlineData(0x0000_7fff_ffff_f000ul)]
    public void InstructionPointerOfAnyThreadOutsideUserSpaceIsRefused(ulong rip)
    {
        byte[] image = new V3Image { Threads = 3 }.Build();
        int offset = V3Image.Patch<CpuRecord>(image, 2, c => { c.Rip = rip; return c; });
        Assert.Contains($"thread {V3Image.Tid(2)}'s instruction pointer 0x{rip:x} is not a user-space address", Expect(image, RecordType.Cpu, offset).Message);
    }

    [Fact]
    public void FsBaseOutsideUserSpaceIsRefused()
    {
        byte[] image = new V3Image { Threads = 2 }.Build();
        int offset = V3Image.Patch<CpuRecord>(image, 0, c => { c.FsBase = 0xffff_8880_0000_0000; return c; });
        Assert.Contains("fs base 0xffff888000000000", Expect(image, RecordType.Cpu, offset).Message);
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(4, 0)]
    [InlineData(2, 2)]
    public void DumpableOrNoNewPrivsOutOfRangeIsRefused(int dumpable, int noNewPrivs)
    {
        byte[] image = new V3Image { Threads = 2 }.Build();
        int offset = V3Image.Patch<TaskRecord>(image, 1, t => { t.Dumpable = dumpable; t.NoNewPrivileges = noNewPrivs; return t; });
        Assert.Contains($"dumpable {dumpable} (0..3) and no_new_privs {noNewPrivs}", Expect(image, RecordType.Task, offset).Message);
    }

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains($"record {ImageFormatException.RecordName(record)} at offset {offset}", error.Message);
        return error;
    }
}
