using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Image.Tests;

/// <summary>A small image with one record of most kinds, page chunks included.</summary>
internal static class SampleImage
{
    public const uint PageSize = 4096;

    public static byte[] Build(WriteBehind writeBehind = WriteBehind.None)
    {
        using var output = new MemoryStream();
        using (var writer = new ImageWriter(output, leaveOpen: true, writeBehind))
        {
            WriteHeader(writer);
            writer.Write(new TreeRecord { TaskCount = 1 });
            writer.Write(new TaskRecord { Pid = 1234, Ppid = 1, Umask = 0x12 });
            writer.WriteString("/home/user");
            writer.Write(new MmRecord { VmaCount = 1, Brk = 0x5000_0000 });
            writer.Write(new VmaRecord { VmStart = 0x7000_0000, VmEnd = 0x7000_3000, VmaType = VmaType.Anon, Protection = 3, PagesPopulated = 2 });
            var contents = new byte[2 * PageSize];
            for (var i = 0; i < contents.Length; i++) contents[i] = (byte)(i * 7 + 1);
            writer.WritePageArray([0x7000_0000, 0x7000_2000], contents);
            writer.WritePageArrayEnd();
            var path = "/etc/hosts"u8.ToArray();
            writer.Write(new FileRecord { ObjRef = 1, Kind = FileKind.Regular, Position = 42, PathLength = (uint)path.Length }, path);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = 1 });
            writer.WriteTail();
        }
        return output.ToArray();
    }

    /// <summary>A valid header for 4 KiB pages, the first record of every test image.</summary>
    public static void WriteHeader(ImageWriter writer) => writer.Write(new HeaderRecord
    {
        Magic = HeaderRecord.ExpectedMagic,
        FormatVersion = HeaderRecord.CurrentFormatVersion,
        LinuxCrNumbering = HeaderRecord.LinuxCrVersion,
        Arch = Architecture.X86_64,
        PageSize = PageSize,
        TaskCommLength = 16,
    });

    /// <summary>Reads the whole sample back, checking what it holds.</summary>
    public static void ReadAndCheck(byte[] image, bool verifyChecksum = true)
    {
        using var reader = new ImageReader(new MemoryStream(image), verifyChecksum: verifyChecksum);
        var header = reader.ReadHeader();
        Equal(PageSize, header.PageSize);
        Equal(1, reader.Read<TreeRecord>().TaskCount);
        var task = reader.Read<TaskRecord>();
        Equal(1234, task.Pid);
        Equal(0x12u, task.Umask);
        Equal("/home/user", reader.ReadString());
        Equal(0x5000_0000ul, reader.Read<MmRecord>().Brk);
        var vma = reader.Read<VmaRecord>();
        Equal(VmaType.Anon, vma.VmaType);
        var chunk = reader.Read<PageArrayRecord>();
        Equal(2u, chunk.PageCount);
        Span<ulong> addresses = stackalloc ulong[2];
        reader.ReadPageAddresses(addresses);
        Equal(0x7000_2000ul, addresses[1]);
        var contents = new byte[2 * PageSize];
        reader.ReadPageContents(contents);
        Equal((byte)8, contents[1]);
        Equal(0u, reader.Read<PageArrayRecord>().PageCount);
        var file = reader.Read<FileRecord>();
        Equal(42L, file.Position);
        Equal("/etc/hosts", reader.ReadTrailingString());
        Equal(3, reader.Read<FileDescriptorRecord>().Fd);
        reader.ReadTail();
    }

    private static void Equal<T>(T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
            throw new ImageFormatException(null, 0, $"sample mismatch: expected {expected}, read {actual}");
    }
}
