using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>Format 3 images written with ImageWriter come back whole through ImageModelReader.</summary>
public unsafe class V3RoundTripTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EveryRecordComesBackThroughTheModel(bool verifyChecksum)
    {
        var builder = new V3Image { Threads = 3 };
        byte[] image = builder.Build();
        ImageModel model = V3Image.Read(image, verifyChecksum);

        // header, tree, task table
        Assert.Equal(HeaderRecord.CurrentFormatVersion, model.Header.FormatVersion);
        Assert.Equal(V3Image.ImageId, model.Header.ImageId);
        Assert.Equal(0ul, model.Header.ParentImageId);
        Assert.Equal(V3Image.PageSize, model.Header.PageSize);
        HeaderRecord header = model.Header;
        Assert.Equal("6.18.0-v3test", RecordText.CString(header.KernelRelease, 65));
        Assert.Equal(0x2e7ul, model.Arch.XFeatures);
        Assert.Equal(V3Image.XstateLength, model.Arch.XstateSize);
        Assert.Equal(3, model.Tree.TaskCount);
        Assert.Equal(1, model.Tree.ProcessCount);
        Assert.Equal(3, model.TaskTable.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(Bytes(V3Image.TaskIds(i)), Bytes(model.TaskTable[i]));
            TaskIdsRecord ids = model.TaskTable[i];
            Assert.Equal(V3Image.Tid(i), ids.Pid);
            Assert.Equal(V3Image.LeaderPid, ids.Tgid);
            Assert.Equal(V3Image.Sid, ids.Sid);
            Assert.Equal(1, ids.NamespaceLevels);
            Assert.Equal(V3Image.Tid(i), ids.NamespacePids[0]);
        }
        Assert.Equal(image.Length, model.Bytes);
        Assert.Equal(V3Image.Records(image).Count - 1, model.RecordCount);

        // the process
        ProcessImage process = Assert.Single(model.Processes);
        Assert.Equal(V3Image.LeaderPid, process.Pid);
        Assert.Equal(Bytes(builder.Task(0)), Bytes(process.Task));
        Assert.Equal(V3Image.Cwd, process.Cwd);
        Assert.Equal(V3Image.Root, process.Root);
        Assert.Equal(V3Image.Exe, process.ExePath);
        Assert.Equal(Bytes(V3Image.Credentials), Bytes(process.Credentials));
        Assert.Equal(V3Image.Groups, process.Groups);

        // memory
        MemoryImage memory = process.Memory;
        Assert.Equal(Bytes(V3Image.Mm(V3Image.MmRef)), Bytes(memory.Mm));
        Assert.Equal(3, memory.Vmas.Count);
        Assert.Equal(VmaType.File, memory.Vmas[0].Record.VmaType);
        Assert.Equal(V3Image.LibraryPath, memory.Vmas[0].File!.Path);
        Assert.Equal(V3Image.LibraryRef, memory.Vmas[0].File!.Record.ObjRef);
        Assert.Equal(1ul, memory.Vmas[0].PagesSaved);
        Assert.Null(memory.Vmas[1].File);
        Assert.Equal(4ul, memory.Vmas[1].Record.PagesPopulated);
        Assert.Equal(3ul, memory.Vmas[1].PagesSaved);
        Assert.Equal(V3Image.AnonChunks, memory.Vmas[1].Chunks.Select(c => c.Addresses));
        Assert.Equal(VmaType.SharedFile, memory.Vmas[2].Record.VmaType);
        Assert.Equal(2ul, memory.Vmas[2].Record.VmPgoff);
        Assert.Empty(memory.Vmas[2].Chunks);

        // files: the log is shared by fd 3 and the shared mapping, the library by fd 5 and its mapping
        FileTableImage files = process.FileTable;
        Assert.Equal(V3Image.FileTableRef, files.ObjRef);
        Assert.Equal([3, 4, 5], files.Descriptors.Select(d => d.Fd));
        Assert.Equal([V3Image.LogRef, V3Image.DevNullRef, V3Image.LibraryRef], files.Descriptors.Select(d => d.FileObjRef));
        Assert.Equal(1, files.Descriptors[0].CloseOnExec);
        Assert.Same(memory.Vmas[2].File, files.Files[V3Image.LogRef]);
        Assert.Same(memory.Vmas[0].File, files.Files[V3Image.LibraryRef]);
        FileImage devNull = files.Files[V3Image.DevNullRef];
        Assert.Equal(V3Image.DevNullPath, devNull.Path);
        Assert.Equal(FileKind.CharacterDevice, devNull.Record.Kind);
        Assert.Equal(0x103ul, devNull.Record.RawDevice);
        Assert.Equal(V3Image.DevNullRef * 100L, devNull.Record.Position);
        Assert.Equal(V3Image.LogPath, files.Files[V3Image.LogRef].Path);

        // signals
        Assert.Equal(V3Image.HandlersRef, process.SignalHandlers.ObjRef);
        Assert.Equal(64, process.SignalHandlers.Actions.Count);
        for (int s = 1; s <= 64; s++) Assert.Equal(Bytes(V3Image.Action(s)), Bytes(process.SignalHandlers.Actions[s - 1]));
        Assert.Equal(Bytes(V3Image.Signal(V3Image.SignalRef, 2)), Bytes(process.Signal.Record));
        Assert.Equal(V3Image.SharedSignals, process.Signal.SharedPending.Select(p => p.Signal));
        for (int p = 0; p < 2; p++)
            Assert.Equal(Bytes(V3Image.Pending(V3Image.SharedSignals[p], shared: true, p)), Bytes(process.Signal.SharedPending[p]));

        // threads, the leader first
        Assert.Equal(3, process.Threads.Count);
        for (int i = 0; i < 3; i++)
        {
            ThreadImage thread = process.Threads[i];
            Assert.Equal(V3Image.Tid(i), thread.Tid);
            Assert.Equal(V3Image.ThreadName(i), thread.Name);
            Assert.Equal(Bytes(builder.Task(i)), Bytes(thread.Task));
            TaskRecord task = thread.Task;
            Assert.Equal(V3Image.ThreadName(i), RecordText.CString(task.Comm, 16));
            Assert.Equal(Bytes(V3Image.Thread(i)), Bytes(thread.Thread));
            Assert.Equal(0x7f30_0000_0020ul + (ulong)i * 0x100, thread.Thread.RobustListHead);
            Assert.Equal(24ul, thread.Thread.RobustListLength);
            Assert.Equal(0x7f30_0000_0000ul + (ulong)i * 0x100, thread.Thread.ClearChildTid);
            Assert.Equal(i == 2 ? 3 : 0, thread.Thread.SchedulingPolicy);
            Assert.Equal(i == 2 ? 10 : 0, thread.Thread.Nice);
            Assert.Equal(V3Image.PendingCount(i), thread.Thread.PendingCount);
            Assert.Equal(V3Image.PendingCount(i), thread.Pending.Count);
            for (int p = 0; p < thread.Pending.Count; p++)
                Assert.Equal(Bytes(V3Image.Pending(V3Image.ThreadSignal(p), shared: false, p)), Bytes(thread.Pending[p]));
            if (i == 1)
            {
                Assert.Equal(SyscallState.RestartBlock, thread.Thread.SyscallState);
                Assert.NotNull(thread.RestartBlock);
                Assert.Equal(Bytes(V3Image.RestartBlock), Bytes(thread.RestartBlock!.Value));
                RestartBlockRecord block = thread.RestartBlock.Value;
                Assert.Equal(1_500_000_000ul, block.Arguments[0]);
            }
            else Assert.Null(thread.RestartBlock);
            Assert.Equal(0x7f40_0000_0000ul + (ulong)i * 0x10000, thread.SignalStack.StackPointer);
            Assert.Equal(0x8000ul, thread.SignalStack.StackSize);
            Assert.Equal(0x7f50_0000_0000ul + (ulong)i * 0x20, thread.Rseq.Address);
            Assert.Equal(0x53053053u, thread.Rseq.Signature);
            Assert.Equal(V3Image.Rip(i), thread.Cpu.Rip);
            Assert.Equal(0x7f60_0000_0000ul + (ulong)i, thread.Cpu.FsBase);
            Assert.Equal(V3Image.XstateLength, thread.XstateRecord.Length);
            Assert.Equal(0x7ul, thread.XstateRecord.XstateFeatures);
            Assert.Equal(V3Image.Xstate(i), thread.Xstate);
        }
    }

    [Fact]
    public void ObjrefsResolveToTheObjectsTheFirstUseDefined()
    {
        // Threads 1 and 2 write only OBJREFs for mm, file table, handlers and signal: had a
        // reference resolved to anything but the leader's objects, the model would refuse them as
        // not sharing; file objrefs used by a mapping and a descriptor give one FileImage.
        byte[] image = new V3Image { Threads = 3 }.Build();
        Assert.Equal(8, V3Image.Records(image).Count(r => r.Type == RecordType.Objref));
        Assert.Single(V3Image.Records(image), r => r.Type == RecordType.Mm);
        ProcessImage process = Assert.Single(V3Image.Read(image).Processes);
        Assert.Equal(3, process.Threads.Count);
        Assert.Same(process.Memory.Vmas[0].File, process.FileTable.Files[V3Image.LibraryRef]);
        Assert.Same(process.Memory.Vmas[2].File, process.FileTable.Files[V3Image.LogRef]);

        // Two reads give two models: no object is cached across images.
        ProcessImage again = Assert.Single(V3Image.Read(image).Processes);
        Assert.NotSame(process.Memory, again.Memory);
    }

    [Fact]
    public void AnObjrefFromAnotherProcessGivesTheSameInstance()
    {
        // Process 6000 shares the leader's descriptor table by OBJREF and has its own mm, handlers and signal state.
        byte[] image = new V3Image { Threads = 2, SecondProcess = true }.Build();
        ImageModel model = V3Image.Read(image);
        Assert.Equal(2, model.Tree.ProcessCount);
        Assert.Equal([V3Image.LeaderPid, V3Image.LeaderPid + 1, V3Image.ChildPid], model.TaskTable.Select(t => t.Pid));
        Assert.Equal(2, model.Processes.Count);
        ProcessImage parent = model.Processes[0], child = model.Processes[1];
        Assert.Equal(V3Image.ChildPid, child.Pid);
        Assert.Equal("/tmp", child.Cwd);
        Assert.Empty(child.Groups);
        Assert.Equal("child", Assert.Single(child.Threads).Name);
        Assert.Equal(2, parent.Threads.Count);

        Assert.Same(parent.FileTable, child.FileTable);
        Assert.Same(parent.FileTable.Files[V3Image.LogRef], child.FileTable.Files[V3Image.LogRef]);
        Assert.NotSame(parent.Memory, child.Memory);
        Assert.Equal(V3Image.ChildMmRef, child.Memory.Mm.ObjRef);
        Assert.Empty(child.Memory.Vmas);
        Assert.NotSame(parent.SignalHandlers, child.SignalHandlers);
        Assert.Empty(child.SignalHandlers.Actions);
        Assert.NotSame(parent.Signal, child.Signal);
        Assert.Equal(V3Image.ChildSignalRef, child.Signal.Record.ObjRef);
        Assert.Empty(child.Signal.SharedPending);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PageChunkContentsOffsetPointsAtThePageBytes(bool verifyChecksum)
    {
        byte[] image = new V3Image().Build();
        ImageModel model = V3Image.Read(image, verifyChecksum);
        int pages = 0;
        foreach (VmaImage vma in model.Processes[0].Memory.Vmas)
            foreach (PageChunk chunk in vma.Chunks)
            {
                // The chunk's record ends right after its contents.
                var record = V3Image.Records(image).Single(r => r.Offset < chunk.ContentsOffset && chunk.ContentsOffset < r.Offset + r.Length);
                Assert.Equal(RecordType.PageArray, record.Type);
                Assert.Equal(record.Offset + 16 + chunk.Addresses.Length * 8, chunk.ContentsOffset);
                for (int k = 0; k < chunk.Addresses.Length; k++)
                {
                    var page = image.AsSpan((int)(chunk.ContentsOffset + k * V3Image.PageSize), (int)V3Image.PageSize);
                    for (int b = 0; b < V3Image.PageSize; b += 509)
                        Assert.Equal(V3Image.PageByte(chunk.Addresses[k], b), page[b]);
                    Assert.Equal(V3Image.PageByte(chunk.Addresses[k], (int)V3Image.PageSize - 1), page[^1]);
                    pages++;
                }
            }
        Assert.Equal(4, pages);

        // And from the stream: seek there and read.
        using var stream = new MemoryStream(image);
        PageChunk second = model.Processes[0].Memory.Vmas[1].Chunks[1];
        stream.Seek(second.ContentsOffset + V3Image.PageSize, SeekOrigin.Begin);
        var contents = new byte[V3Image.PageSize];
        stream.ReadExactly(contents);
        Assert.Equal(Enumerable.Range(0, (int)V3Image.PageSize).Select(b => V3Image.PageByte(second.Addresses[1], b)), contents);
    }

    [Fact]
    public void ATaskTableOf512ThreadsReadsBackInOrder()
    {
        const int count = 512;
        byte[] image = new V3Image { Threads = count }.Build();
        ImageModel model = V3Image.Read(image);
        Assert.Equal(count, model.Tree.TaskCount);
        Assert.Equal(Enumerable.Range(V3Image.LeaderPid, count), model.TaskTable.Select(t => t.Pid));
        Assert.All(model.TaskTable, t => Assert.Equal(V3Image.LeaderPid, t.Tgid));
        ProcessImage process = Assert.Single(model.Processes);
        Assert.Equal(Enumerable.Range(V3Image.LeaderPid, count), process.Threads.Select(t => t.Tid));
        Assert.Equal(Enumerable.Range(0, count).Select(V3Image.ThreadName), process.Threads.Select(t => t.Name));
        Assert.Equal(Enumerable.Range(0, count).Select(V3Image.Rip), process.Threads.Select(t => t.Cpu.Rip));
        Assert.Equal(Enumerable.Range(0, count).Select(V3Image.PendingCount), process.Threads.Select(t => t.Pending.Count));
        Assert.Single(process.Threads, t => t.RestartBlock is not null);
    }

    [Fact]
    public void AVersion2ImageIsRefusedNamingBothVersions()
    {
        byte[] image = new V3Image { FormatVersion = 2 }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.Header, error.Record);
        Assert.Equal(0, error.Offset);
        Assert.Contains("format version 2", error.Message);
        Assert.Contains("version 3", error.Message);
        Assert.Contains("checkpoint the process again", error.Message);

        // The same from the bare reader.
        using var reader = new ImageReader(new MemoryStream(image));
        Assert.Equal(error.Message, Assert.Throws<ImageFormatException>(() => reader.ReadHeader()).Message);
    }

    /// <summary>Every field of a record, as the bytes it is written as (fixed buffers included).</summary>
    internal static byte[] Bytes<T>(T record) where T : struct, IImageRecord<T>
    {
        var bytes = new byte[T.FixedSize];
        record.WriteTo(bytes, (uint)T.FixedSize);
        return bytes;
    }
}
