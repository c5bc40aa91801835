using System.Globalization;
using System.Text;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Tests;

/// <summary>The memory part of <see cref="RestoreTestCheckpoint"/>: MM, VMAs (from smaps) and their pages (pagemap).</summary>
internal static unsafe class RestoreTestMemoryCapture
{
    private const ulong Present = 1ul << 63, Swapped = 1ul << 62, FilePage = 1ul << 61;

    public static void Write(ImageWriter writer, int pid, IReadOnlyList<MapsLine> maps, ulong brk)
    {
        string[] stat = File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].Split(' ');
        ulong field(int n) => ulong.Parse(stat[n - 3]); // fields counted from 1, the first two cut off
        byte[] auxv = File.ReadAllBytes($"/proc/{pid}/auxv");
        var mm = new MmRecord
        {
            ObjRef = 1, VmaCount = maps.Count, StartCode = field(26), EndCode = field(27), StartStack = field(28),
            StartData = field(45), EndData = field(46), StartBrk = field(47), Brk = brk,
            ArgStart = field(48), ArgEnd = field(49), EnvStart = field(50), EnvEnd = field(51), AuxvWords = (uint)(auxv.Length / 8),
        };
        for (int i = 0; i < auxv.Length / 8; i++) mm.SavedAuxv[i] = BitConverter.ToUInt64(auxv, i * 8);
        writer.Write(mm);

        var flags = GrowsDownRanges(pid);
        var files = new Dictionary<string, int>();
        using SafeFileHandle pagemap = File.OpenHandle($"/proc/{pid}/pagemap");
        using SafeFileHandle mem = File.OpenHandle($"/proc/{pid}/mem");
        foreach (MapsLine map in maps)
        {
            VmaType type = TypeOf(map);
            int fileRef = 0;
            if (type is VmaType.File or VmaType.SharedFile && !files.TryGetValue(map.Name, out fileRef))
            {
                fileRef = files[map.Name] = 100 + files.Count;
                var identity = FileIdentity.Of(map.Name);
                writer.Write(new FileRecord
                {
                    ObjRef = fileRef, Kind = FileKind.Regular, Device = identity?.Device ?? 0, Inode = identity?.Inode ?? 0,
                    FileSize = identity?.Size ?? 0, MtimeNanoseconds = identity?.MtimeNanoseconds ?? 0, Mode = identity?.Mode ?? 0,
                    PathLength = (uint)Encoding.UTF8.GetByteCount(map.Name),
                }, Encoding.UTF8.GetBytes(map.Name));
            }
            var pages = SelectPages(pagemap, map, type);
            writer.Write(new VmaRecord
            {
                VmStart = map.Start, VmEnd = map.End, VmPgoff = map.Offset / 4096, VmaType = type, FileObjRef = fileRef,
                VmFlags = flags.Contains(map.Start) ? 0x100ul : 0, SharedMemoryObjRef = type == VmaType.SharedAnon ? 500 + (int)(map.Start >> 12 & 0xffff) : 0,
                Protection = (uint)((map.Permissions[0] == 'r' ? 1 : 0) | (map.Permissions[1] == 'w' ? 2 : 0) | (map.Permissions[2] == 'x' ? 4 : 0)),
                PagesSaved = (ulong)pages.Count,
            });
            for (int i = 0; i < pages.Count; i += PageArrayRecord.MaxPagesPerChunk)
            {
                ulong[] chunk = pages.Skip(i).Take(PageArrayRecord.MaxPagesPerChunk).ToArray();
                byte[] contents = new byte[chunk.Length * 4096];
                for (int p = 0; p < chunk.Length; p++)
                    RandomAccess.Read(mem, contents.AsSpan(p * 4096, 4096), (long)chunk[p]);
                writer.WritePageArray(chunk, contents);
            }
            writer.WritePageArrayEnd();
        }
    }

    private static VmaType TypeOf(MapsLine map) => map.Name switch
    {
        "[vdso]" => VmaType.Vdso,
        "[vvar]" => VmaType.Vvar,
        "[vvar_vclock]" => VmaType.VvarVclock,
        "[vsyscall]" => VmaType.Vsyscall,
        _ when map.Permissions[3] == 's' => map.Name.StartsWith("/dev/zero") ? VmaType.SharedAnon : VmaType.SharedFile,
        _ when map.Name.StartsWith('/') => VmaType.File,
        _ => VmaType.Anon,
    };

    private static List<ulong> SelectPages(SafeFileHandle pagemap, MapsLine map, VmaType type)
    {
        var pages = new List<ulong>();
        if (type is not (VmaType.Anon or VmaType.File or VmaType.SharedAnon)) return pages;
        ulong count = (map.End - map.Start) / 4096;
        byte[] entries = new byte[count * 8];
        RandomAccess.Read(pagemap, entries, (long)(map.Start / 4096 * 8));
        for (ulong i = 0; i < count; i++)
        {
            ulong entry = BitConverter.ToUInt64(entries, (int)(i * 8));
            bool wanted = type == VmaType.File ? (entry & Present) != 0 && (entry & FilePage) == 0 || (entry & Swapped) != 0
                : (entry & (Present | Swapped)) != 0;
            if (wanted) pages.Add(map.Start + i * 4096);
        }
        return pages;
    }

    private static HashSet<ulong> GrowsDownRanges(int pid)
    {
        var result = new HashSet<ulong>();
        ulong current = 0;
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            // A range line ("start-end perms ..."), or a field line ("Name:  value").
            if (char.IsAsciiHexDigit(line[0]) && line.IndexOf('-') is > 0 and var dash && dash < line.IndexOf(' '))
                current = ulong.Parse(line[..dash], NumberStyles.HexNumber);
            if (line.StartsWith("VmFlags:") && line.Split(' ').Contains("gd"))
                result.Add(current);
        }
        return result;
    }
}
