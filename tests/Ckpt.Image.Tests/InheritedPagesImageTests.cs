using System.Buffers.Binary;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Pages a child shares copy-on-write with its parent (INHERITED_PAGES, 406) in format-3 images: the
/// child's private VMA lists the addresses it inherits from the parent's anonymous VMA (V3Image's
/// AnonStart, 4 pages) and stores one page of its own; every lie about them is refused naming the
/// record and its offset.
/// </summary>
public class InheritedPagesImageTests
{
    private const ulong Start = V3Image.AnonStart, PageSize = V3Image.PageSize;

    private static void WriteInherited(ImageWriter writer, ulong[] addresses, uint? count = null)
    {
        byte[] bytes = new byte[addresses.Length * 8];
        for (int i = 0; i < addresses.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), addresses[i]);
        writer.Write(new InheritedPagesRecord { PageCount = count ?? (uint)addresses.Length, AddressBytes = (uint)bytes.Length }, bytes);
    }

    /// <summary>The child's copy of the parent's anonymous VMA: pages 0, 2 and 3 inherited (in two records), page 1 its own.</summary>
    private static V3Image Tree(Action<ImageWriter>? vma = null) => new()
    {
        Threads = 1, SecondProcess = true,
        ChildVmas = (1, vma ?? (w => Child(w, [[Start], [Start + 2 * PageSize, Start + 3 * PageSize]], [Start + PageSize]))),
    };

    private static void Child(ImageWriter writer, ulong[][] inherited, ulong[] stored, ulong populated = 4, VmaType type = VmaType.Anon, ulong start = Start)
    {
        writer.Write(new VmaRecord { VmStart = start, VmEnd = start + 4 * PageSize, VmFlags = 0x100073, VmaType = type, Protection = 3, PagesPopulated = populated });
        foreach (ulong[] record in inherited) WriteInherited(writer, record);
        if (stored.Length > 0) V3Image.WritePages(writer, stored);
        writer.WritePageArrayEnd();
    }

    [Fact]
    public void InheritedPagesRoundTripNextToTheChildsOwnPages()
    {
        ImageModel model = V3Image.Read(Tree().Build());
        VmaImage child = Assert.Single(model.Processes[1].Memory.Vmas);
        Assert.Equal([Start, Start + 2 * PageSize, Start + 3 * PageSize], child.InheritedPages);
        Assert.Equal(1ul, child.PagesSaved);
        Assert.All(model.Processes[0].Memory.Vmas, v => Assert.Empty(v.InheritedPages));
    }

    [Fact]
    public void MoreInheritedAndStoredPagesThanTheVmaCountedAreRefused()
    {
        byte[] image = Tree(w => Child(w, [[Start, Start + 2 * PageSize]], [Start + PageSize], populated: 2)).Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.PageArray, error.Record);
        Assert.Contains("more pages in its chunks (and inherited) than the 2 it counted", error.Message);
        byte[] inheritedAlone = Tree(w => Child(w, [[Start, Start + PageSize, Start + 2 * PageSize]], [], populated: 2)).Build();
        Assert.Contains("inherits more pages than the 2 it counted",
            Expect(inheritedAlone, RecordType.InheritedPages, V3Image.OffsetOf(inheritedAlone, RecordType.InheritedPages)).Message);
    }

    [Fact]
    public void APageCountThatDisagreesWithTheAddressesIsRefused()
    {
        byte[] image = Tree(w =>
        {
            w.Write(new VmaRecord { VmStart = Start, VmEnd = Start + 4 * PageSize, VmFlags = 0x100073, VmaType = VmaType.Anon, Protection = 3, PagesPopulated = 4 });
            WriteInherited(w, [Start, Start + PageSize], count: 3);
            w.WritePageArrayEnd();
        }).Build();
        Assert.Contains("3 pages in 16 bytes of addresses", Expect(image, RecordType.InheritedPages, V3Image.OffsetOf(image, RecordType.InheritedPages)).Message);
    }

    [Fact]
    public void APageBothStoredAndInheritedIsRefused()
    {
        byte[] image = Tree(w => Child(w, [[Start]], [Start])).Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.PageArray, error.Record);
        Assert.Contains($"page 0x{Start:x} of VMA", error.Message);
        Assert.Contains("is stored and inherited from the parent too", error.Message);
    }

    [Fact]
    public void AnInheritedPageWhereTheParentHasNoPrivateMemoryIsRefused()
    {
        // The parent's shared file mapping at LogStart is not private memory; nothing at all is mapped at LogStart + 1 MiB.
        foreach (ulong start in new[] { V3Image.LogStart, V3Image.LogStart + (1ul << 20) })
        {
            byte[] image = Tree(w => Child(w, [[start]], [], start: start)).Build();
            Assert.Contains($"page 0x{start:x} of VMA 0x{start:x}-0x{start + 4 * PageSize:x} of process {V3Image.ChildPid} is inherited, but the parent has no private memory there",
                Expect(image, RecordType.InheritedPages, V3Image.OffsetOf(image, RecordType.InheritedPages)).Message);
        }
    }

    [Fact]
    public void InheritedPagesOutsideTheVmaOrOutOfOrderAreRefused()
    {
        foreach (ulong[] addresses in new[] { new[] { Start + 4 * PageSize }, new[] { Start + PageSize, Start }, new[] { Start + 1 } })
        {
            byte[] image = Tree(w => Child(w, [addresses], [])).Build();
            Assert.Contains("is outside VMA", Expect(image, RecordType.InheritedPages, V3Image.OffsetOf(image, RecordType.InheritedPages)).Message);
        }
        byte[] acrossRecords = Tree(w => Child(w, [[Start + 2 * PageSize], [Start + PageSize]], [])).Build();
        Assert.Contains($"page 0x{Start + PageSize:x} is outside VMA", Expect(acrossRecords, RecordType.InheritedPages, V3Image.OffsetOf(acrossRecords, RecordType.InheritedPages, 1)).Message);
    }

    [Fact]
    public void TheRootProcessAndSharedMemoryInheritNothing()
    {
        // The leader (the root) has no parent in the image: its anonymous VMA may not inherit.
        byte[] root = new V3Image
        {
            Threads = 1,
            LeaderExtraVmas = (1, w => Child(w, [[0x7f50_0000_0000]], [], start: 0x7f50_0000_0000)),
        }.Build();
        Assert.Contains("its parent is not an earlier process of the image", Expect(root, RecordType.InheritedPages, V3Image.OffsetOf(root, RecordType.InheritedPages)).Message);
        byte[] vdso = Tree(w => Child(w, [[Start]], [], type: VmaType.Vdso)).Build();
        Assert.Contains("is Vdso: only private memory inherits pages", Expect(vdso, RecordType.InheritedPages, V3Image.OffsetOf(vdso, RecordType.InheritedPages)).Message);
    }

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }
}
