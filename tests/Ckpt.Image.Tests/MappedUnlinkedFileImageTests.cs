using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// A memfd mapped twice (read-write and read-execute) and open as fd 3, and a memfd only mapped: the
/// file object is defined once, by its first mapping (FILE, UNLINKED_FILE, content chunks before the
/// VMA), and every later use names it by objref. The MM's MEMBARRIER record follows its last VMA. Read
/// back as written; lies refused at the lying record (a VMA naming an object that is not a file, or a
/// file that cannot be mapped; a size that disagrees; membarrier bits that are not registrations).
/// </summary>
public class MappedUnlinkedFileImageTests
{
    private const int DualRef = 30, OnlyRef = 31;
    private const ulong RwStart = 0x7f30_0000_0000, RxStart = 0x7f40_0000_0000, OnlyStart = 0x7f50_0000_0000;
    private const long DualSize = 2L << 40; // the .NET runtime's double-mapping memfd: 2 TiB, sparse
    private const ulong VM_SHARED_RW = 0xfb, VM_SHARED_RX = 0xfd;

    private static void WriteMemfd(ImageWriter writer, int objRef, string name, long size, ulong[] pages, FileKind kind = FileKind.Memfd, long? fileRecordSize = null)
    {
        byte[] path = Encoding.UTF8.GetBytes($"/memfd:{name} (deleted)");
        writer.Write(new FileRecord { ObjRef = objRef, Kind = kind, OpenFlags = 0x8002, Mode = 0x81ff, FileSize = fileRecordSize ?? size, PathLength = (uint)path.Length }, path);
        if (kind != FileKind.Memfd) return;
        writer.Write(new UnlinkedFileRecord { ObjRef = objRef, Seals = FileSeals.Shrink | FileSeals.Grow, Uid = 1000, Gid = 100, FileSize = size });
        if (pages.Length > 0) V3Image.WritePages(writer, pages);
        writer.WritePageArrayEnd();
    }

    private static void WriteVma(ImageWriter writer, ulong start, ulong flags, uint protection, int fileRef, VmaType type = VmaType.SharedFile)
    {
        writer.Write(new VmaRecord { VmStart = start, VmEnd = start + 4 * V3Image.PageSize, VmFlags = flags, VmaType = type, Protection = protection, FileObjRef = fileRef });
        writer.WritePageArrayEnd();
    }

    /// <param name="firstUse">writes the memfd's FILE before the first VMA (or a hostile stand-in)</param>
    private static byte[] Image(Action<ImageWriter>? firstUse = null, Action<ImageWriter>? memoryTail = null, int secondVmaRef = DualRef) => new V3Image
    {
        Vmas = (3, writer =>
        {
            (firstUse ?? (w => WriteMemfd(w, DualRef, "doublemapper", DualSize, [0, 3 * V3Image.PageSize])))(writer);
            WriteVma(writer, RwStart, VM_SHARED_RW, 3, DualRef);
            WriteVma(writer, RxStart, VM_SHARED_RX, 5, secondVmaRef);
            WriteMemfd(writer, OnlyRef, "only", 2 * V3Image.PageSize, [V3Image.PageSize]);
            WriteVma(writer, OnlyStart, VM_SHARED_RW, 3, OnlyRef);
        }),
        MemoryTail = memoryTail,
        Descriptors = (_, writer) =>
        {
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = DualRef });
            V3Image.WriteFile(writer, V3Image.DevNullRef, FileKind.CharacterDevice, V3Image.DevNullPath);
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.DevNullRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.DevNullRef });
        },
    }.Build();

    private static MembarrierRecord Membarrier(MembarrierRegistrations bits, int mm = V3Image.MmRef) => new() { MmObjRef = mm, Registrations = bits };

    [Fact]
    public void A_memfd_is_one_object_for_its_descriptor_and_both_views_and_a_mapped_only_memfd_has_its_own()
    {
        const MembarrierRegistrations registered = MembarrierRegistrations.PrivateExpedited | MembarrierRegistrations.PrivateExpeditedRseq;
        ProcessImage process = V3Image.Read(Image(memoryTail: w => w.Write(Membarrier(registered)))).Processes[0];
        var vmas = process.Memory.Vmas;
        FileImage dual = process.FileTable.Files[DualRef];
        Assert.Same(dual, vmas[0].File);
        Assert.Same(dual, vmas[1].File);
        Assert.Equal((FileKind.Memfd, DualSize), (dual.Record.Kind, dual.Unlinked!.Record.FileSize));
        Assert.Equal([0ul, 3 * V3Image.PageSize], dual.Unlinked.Chunks.SelectMany(c => c.Addresses));
        Assert.Equal((OnlyRef, "/memfd:only (deleted)"), (vmas[2].File!.Record.ObjRef, vmas[2].File!.Path));
        Assert.False(process.FileTable.Files.ContainsKey(OnlyRef)); // no descriptor holds it
        Assert.Equal(registered, process.Memory.Membarrier);
    }

    [Fact]
    public void Without_a_membarrier_record_there_are_no_registrations()
    {
        Assert.Equal(MembarrierRegistrations.None, V3Image.Read(Image()).Processes[0].Memory.Membarrier);
    }

    [Fact]
    public void A_vma_naming_an_object_that_is_not_a_file_is_refused_at_the_vma()
    {
        // Objref 1 is the MM being read: an object, not a file.
        byte[] image = Image(secondVmaRef: V3Image.MmRef);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal((RecordType.Vma, (long)V3Image.OffsetOf(image, RecordType.Vma, 1)), (error.Record!.Value, error.Offset));
        Assert.Contains($"refers to file objref {V3Image.MmRef}, which is a Mm, not a file", error.Message);
    }

    [Fact]
    public void A_vma_mapping_a_file_that_cannot_be_mapped_is_refused_at_the_vma()
    {
        byte[] image = Image(firstUse: w => WriteMemfd(w, DualRef, "doublemapper", DualSize, [], kind: FileKind.Directory));
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.Vma, error.Record);
        Assert.Contains($"maps file objref {DualRef}, a Directory", error.Message);
    }

    [Theory]
    [InlineData(0L)]                 // the FILE record says empty: the contents would be beyond it
    [InlineData(DualSize + 4096)]    // the FILE record says bigger
    public void An_unlinked_file_whose_sizes_disagree_is_refused_at_its_unlinked_file_record(long fileRecordSize)
    {
        byte[] image = Image(firstUse: w => WriteMemfd(w, DualRef, "doublemapper", DualSize, [0], fileRecordSize: fileRecordSize));
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal((RecordType.UnlinkedFile, (long)V3Image.OffsetOf(image, RecordType.UnlinkedFile)), (error.Record!.Value, error.Offset));
        Assert.Contains($"size {DualSize} disagrees with the FILE record's size {fileRecordSize}", error.Message);
    }

    [Fact]
    public void An_unlinked_file_above_the_address_space_is_refused()
    {
        byte[] image = Image(firstUse: w => WriteMemfd(w, DualRef, "doublemapper", UnlinkedFileRecord.MaxSize + 1, []));
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.UnlinkedFile, error.Record);
        Assert.Contains("is negative or above", error.Message);
    }

    public static TheoryData<string, MembarrierRecord, string> MembarrierLies => new()
    {
        { "unknown bit", Membarrier(MembarrierRegistrations.PrivateExpedited | (MembarrierRegistrations)0x400), "registrations 0x410 are none or not MEMBARRIER_CMD_REGISTER_* bits" },
        { "a command that is not a registration", Membarrier((MembarrierRegistrations)0x8 /* MEMBARRIER_CMD_PRIVATE_EXPEDITED */), "registrations 0x8 are none" },
        { "none", Membarrier(MembarrierRegistrations.None), "registrations 0x0 are none" },
        { "another mm", Membarrier(MembarrierRegistrations.PrivateExpedited, mm: 77), "has mm objref 77, in the MM 1" },
    };

    [Theory]
    [MemberData(nameof(MembarrierLies))]
    public void Hostile_membarrier_records_are_refused_at_the_record(string lie, MembarrierRecord record, string message)
    {
        _ = lie;
        byte[] image = Image(memoryTail: w => w.Write(record));
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal((RecordType.Membarrier, (long)V3Image.OffsetOf(image, RecordType.Membarrier)), (error.Record!.Value, error.Offset));
        Assert.Contains(message, error.Message);
    }
}
