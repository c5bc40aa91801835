using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Shared anonymous memory objects (SHARED_MEMORY, 405) in format-3 images: one object mapped by a
/// parent (the whole object) and its child (a view from page 4), defined once before its first VMA
/// and named by objref in the other, each page stored once; every lie about it refused naming the
/// record and its offset.
/// </summary>
public class SharedMemoryImageTests
{
    private const int SharedRef = 20;
    private const ulong ParentStart = 0x7f30_0000_0000, ChildStart = 0x7f40_0000_0000, PageSize = V3Image.PageSize;

    private static SharedMemoryRecord Object(ulong sizePages = 8) => new() { ObjRef = SharedRef, SizePages = sizePages, Inode = 31337 };

    private static void WriteVma(ImageWriter writer, ulong start, ulong pages, ulong pgoff, ulong[] stored, int objRef = SharedRef,
        VmaType type = VmaType.SharedAnon, ulong? populated = null)
    {
        writer.Write(new VmaRecord
        {
            VmStart = start, VmEnd = start + pages * PageSize, VmPgoff = pgoff, VmFlags = 0xfb, VmaType = type, Protection = 3,
            SharedMemoryObjRef = objRef, PagesPopulated = populated ?? (ulong)stored.Length,
        });
        if (stored.Length > 0) V3Image.WritePages(writer, stored);
        writer.WritePageArrayEnd();
    }

    /// <summary>The parent maps the whole object and stores pages 0 and 1; the child maps pages 4..7 and stores page 6.</summary>
    private static V3Image Tree(Action<ImageWriter>? parent = null, Action<ImageWriter>? child = null) => new()
    {
        Threads = 1, SecondProcess = true,
        LeaderExtraVmas = (1, parent ?? (w =>
        {
            w.Write(Object());
            WriteVma(w, ParentStart, 8, 0, [ParentStart, ParentStart + PageSize]);
        })),
        ChildVmas = (1, child ?? (w => WriteVma(w, ChildStart, 4, 4, [ChildStart + 2 * PageSize]))),
    };

    [Fact]
    public void AnObjectMappedByTwoProcessesIsOneObjectWithEachPageOnce()
    {
        ImageModel model = V3Image.Read(Tree().Build());
        VmaImage parent = model.Processes[0].Memory.Vmas.Single(v => v.Record.VmaType == VmaType.SharedAnon);
        VmaImage child = model.Processes[1].Memory.Vmas.Single();
        Assert.Same(parent.SharedMemory, child.SharedMemory);
        SharedMemoryRecord record = parent.SharedMemory!.Record;
        Assert.Equal((SharedRef, 8ul, 31337ul), (record.ObjRef, record.SizePages, record.Inode));
        Assert.Equal((2ul, 1ul), (parent.PagesSaved, child.PagesSaved));
        Assert.Equal(4ul, child.Record.VmPgoff);
        Assert.Null(model.Processes[0].Memory.Vmas[0].SharedMemory); // a file mapping has none
    }

    [Fact]
    public void AVmaNamingAnObjectNoSharedMemoryRecordDefinedIsRefused()
    {
        byte[] image = Tree(child: w => WriteVma(w, ChildStart, 4, 4, [], objRef: 21)).Build();
        var error = Expect(image, RecordType.Vma, V3Image.OffsetOf(image, RecordType.Vma, 4));
        Assert.Contains("maps shared memory objref 21, which no earlier SHARED_MEMORY record defines", error.Message);
    }

    [Fact]
    public void AVmaBeyondTheObjectsPagesIsRefused()
    {
        byte[] image = Tree(child: w => WriteVma(w, ChildStart, 4, 6, [])).Build();
        var error = Expect(image, RecordType.Vma, V3Image.OffsetOf(image, RecordType.Vma, 4));
        Assert.Contains("shows pages 6 to 10 of shared memory objref 20, which has 8 pages", error.Message);
    }

    [Fact]
    public void APageOfTheObjectStoredTwiceIsRefused()
    {
        // The child stores page 4 of the object... and so does the parent (its page at offset 4).
        byte[] image = Tree(parent: w =>
        {
            w.Write(Object());
            WriteVma(w, ParentStart, 8, 0, [ParentStart + 4 * PageSize]);
        }, child: w => WriteVma(w, ChildStart, 4, 4, [ChildStart])).Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.PageArray, error.Record);
        Assert.Contains("page 4 of shared memory objref 20", error.Message);
        Assert.Contains("stored a second time", error.Message);
    }

    [Fact]
    public void MorePagesInTheChunksThanTheVmaCountedAreRefused()
    {
        byte[] image = Tree(child: w => WriteVma(w, ChildStart, 4, 4, [ChildStart, ChildStart + PageSize], populated: 1)).Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.PageArray, error.Record);
        Assert.Contains("more pages in its chunks (and inherited) than the 1 it counted", error.Message);
    }

    [Theory]
    [InlineData(0ul)]
    [InlineData(SharedMemoryRecord.MaxSizePages + 1)]
    public void AnObjectSizeOfNoPagesOrAboveTheLimitIsRefused(ulong pages)
    {
        byte[] image = Tree().Build();
        int offset = V3Image.Patch<SharedMemoryRecord>(image, 0, r => { r.SizePages = pages; return r; });
        Assert.Contains($"shared memory objref 20 has {pages} pages", Expect(image, RecordType.SharedMemory, offset).Message);
    }

    [Fact]
    public void ASharedAnonVmaWithoutAnObjectAndAnOtherVmaWithOneAreRefused()
    {
        byte[] none = Tree(child: w => WriteVma(w, ChildStart, 4, 4, [], objRef: 0)).Build();
        Assert.Contains("maps shared memory objref 0", Expect(none, RecordType.Vma, V3Image.OffsetOf(none, RecordType.Vma, 4)).Message);
        byte[] anon = Tree(child: w => WriteVma(w, ChildStart, 4, 0, [], type: VmaType.Anon)).Build();
        Assert.Contains("of type Anon has shared memory objref 20", Expect(anon, RecordType.Vma, V3Image.OffsetOf(anon, RecordType.Vma, 4)).Message);
    }

    [Fact]
    public void ASharedMemoryRecordFollowedByAVmaOfAnotherObjectIsRefused()
    {
        byte[] image = Tree(parent: w =>
        {
            w.Write(Object());
            WriteVma(w, ParentStart, 8, 0, [], objRef: 22);
        }).Build();
        Assert.Contains("maps shared memory objref 22, but the SHARED_MEMORY record before it defines 20",
            Expect(image, RecordType.Vma, V3Image.OffsetOf(image, RecordType.Vma, 3)).Message);
    }

    [Fact]
    public void ASharedMemoryObjrefAlreadyNamingAFileIsRefused()
    {
        byte[] image = Tree(parent: w =>
        {
            w.Write(new SharedMemoryRecord { ObjRef = V3Image.LibraryRef, SizePages = 8 });
            WriteVma(w, ParentStart, 8, 0, [], objRef: V3Image.LibraryRef);
        }).Build();
        var error = Expect(image, RecordType.SharedMemory, V3Image.OffsetOf(image, RecordType.SharedMemory));
        Assert.Contains($"SharedMemory objref {V3Image.LibraryRef} is already defined (as a File)", error.Message);
    }

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
