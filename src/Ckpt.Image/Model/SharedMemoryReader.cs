using Ckpt.Image.Records;
using static Ckpt.Image.Model.ImageModelReader;

namespace Ckpt.Image.Model;

/// <summary>
/// Shared anonymous memory objects in ImageModelReader's order: a SHARED_MEMORY record defines one
/// right before the first VMA that maps it (in any process); every SharedAnon VMA names a defined
/// object and lies inside it, no other VMA names one, and each page of an object is stored once
/// in the whole image.
/// </summary>
internal static class SharedMemoryReader
{
    /// <summary>The SHARED_MEMORY record before a VMA, if there is one: its objref (defined now), else 0.</summary>
    public static int ReadIfFirstUse(ImageReader reader, ObjectTable objects)
    {
        if (reader.PeekType() != RecordType.SharedMemory) return 0;
        var record = Next<SharedMemoryRecord>(reader);
        long offset = reader.CurrentRecordOffset;
        if (record.SizePages == 0 || record.SizePages > SharedMemoryRecord.MaxSizePages)
            throw Error(reader, RecordType.SharedMemory, $"shared memory objref {record.ObjRef} has {record.SizePages} pages (1 to {SharedMemoryRecord.MaxSizePages})");
        objects.Define(reader, ObjectType.SharedMemory, record.ObjRef, new SharedMemoryImage(record), offset, RecordType.SharedMemory);
        return record.ObjRef;
    }

    /// <summary>The object a VMA maps (null for a VMA that is not SharedAnon), checked against <paramref name="definedBefore"/>.</summary>
    public static SharedMemoryImage? ForVma(ImageReader reader, VmaRecord vma, int definedBefore, ObjectTable objects)
    {
        string range = $"VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x}";
        if (vma.VmaType != VmaType.SharedAnon)
        {
            if (vma.SharedMemoryObjRef != 0 || definedBefore != 0)
                throw Error(reader, RecordType.Vma, $"{range} of type {vma.VmaType} has shared memory objref {vma.SharedMemoryObjRef}{(definedBefore != 0 ? $" after SHARED_MEMORY {definedBefore}" : "")}: only a SharedAnon VMA maps a shared memory object");
            return null;
        }
        if (definedBefore != 0 && vma.SharedMemoryObjRef != definedBefore)
            throw Error(reader, RecordType.Vma, $"{range} maps shared memory objref {vma.SharedMemoryObjRef}, but the SHARED_MEMORY record before it defines {definedBefore}");
        SharedMemoryImage shared = objects.SharedMemory(vma.SharedMemoryObjRef)
            ?? throw Error(reader, RecordType.Vma, $"{range} maps shared memory objref {vma.SharedMemoryObjRef}, which no earlier SHARED_MEMORY record defines");
        ulong pages = (vma.VmEnd - vma.VmStart) / reader.PageSize;
        if (vma.VmPgoff > shared.Record.SizePages || pages > shared.Record.SizePages - vma.VmPgoff)
            throw Error(reader, RecordType.Vma, $"{range} shows pages {vma.VmPgoff} to {vma.VmPgoff + pages} of shared memory objref {shared.ObjRef}, which has {shared.Record.SizePages} pages");
        return shared;
    }

    /// <summary>A page of a shared object stored by two VMAs (two copies that could disagree) is refused.</summary>
    public static void RequireEachPageOnce(ImageReader reader, VmaRecord vma, SharedMemoryImage shared, List<PageChunk> chunks)
    {
        foreach (PageChunk chunk in chunks)
        {
            foreach (ulong address in chunk.Addresses)
            {
                ulong page = vma.VmPgoff + (address - vma.VmStart) / reader.PageSize;
                if (!shared.StoredPages.Add(page))
                    throw new ImageFormatException(RecordType.PageArray, chunk.ContentsOffset,
                        $"page {page} of shared memory objref {shared.ObjRef} (at 0x{address:x}) is stored a second time");
            }
        }
    }
}
