using System.Runtime.InteropServices;
using Ckpt.Image.Records;
using static Ckpt.Image.Model.ImageModelReader;

namespace Ckpt.Image.Model;

/// <summary>
/// The INHERITED_PAGES records after a VMA record (ImageModelReader's order): only in a private VMA
/// (Anon or File) of a process whose parent is an earlier process of the image, addresses page-aligned,
/// inside the VMA, increasing across the records, each covered by a private VMA of the parent (whose
/// page there the restore copies; a page the parent did not store reads as zeros there, as it did).
/// </summary>
internal static class InheritedPagesReader
{
    public static ulong[] Read(ImageReader reader, VmaRecord vma, int pid, MemoryImage? parentMemory)
    {
        if (reader.PeekType() != RecordType.InheritedPages) return [];
        string range = $"VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x} of process {pid}";
        var addresses = new List<ulong>();
        while (reader.PeekType() == RecordType.InheritedPages)
        {
            var record = Next<InheritedPagesRecord>(reader);
            if (vma.VmaType is not (VmaType.Anon or VmaType.File))
                throw Error(reader, RecordType.InheritedPages, $"{range} is {vma.VmaType}: only private memory inherits pages");
            if (parentMemory is null)
                throw Error(reader, RecordType.InheritedPages, $"{range} inherits pages, but its parent is not an earlier process of the image");
            if (record.PageCount == 0 || record.PageCount > InheritedPagesRecord.MaxPages || record.AddressBytes != record.PageCount * 8)
                throw Error(reader, RecordType.InheritedPages, $"{record.PageCount} pages in {record.AddressBytes} bytes of addresses (1 to {InheritedPagesRecord.MaxPages} pages, 8 bytes each)");
            if ((ulong)addresses.Count + record.PageCount > vma.PagesPopulated)
                throw Error(reader, RecordType.InheritedPages, $"{range} inherits more pages than the {vma.PagesPopulated} it counted");
            foreach (ulong address in MemoryMarshal.Cast<byte, ulong>(reader.ReadTrailingBytes()))
            {
                if (address < vma.VmStart || address >= vma.VmEnd || address % reader.PageSize != 0 || (addresses.Count > 0 && address <= addresses[^1]))
                    throw Error(reader, RecordType.InheritedPages, $"page 0x{address:x} is outside {range} or out of order");
                if (!CoveredByPrivateMemory(parentMemory, address))
                    throw Error(reader, RecordType.InheritedPages, $"page 0x{address:x} of {range} is inherited, but the parent has no private memory there");
                addresses.Add(address);
            }
        }
        return addresses.ToArray();
    }

    // The parent's VMAs are sorted and disjoint (checked when they were read).
    private static bool CoveredByPrivateMemory(MemoryImage parent, ulong address)
    {
        IReadOnlyList<VmaImage> vmas = parent.Vmas;
        int low = 0, high = vmas.Count - 1;
        while (low <= high)
        {
            int middle = (low + high) / 2;
            VmaRecord vma = vmas[middle].Record;
            if (address < vma.VmStart) high = middle - 1;
            else if (address >= vma.VmEnd) low = middle + 1;
            else return vma.VmaType is VmaType.Anon or VmaType.File;
        }
        return false;
    }
}
