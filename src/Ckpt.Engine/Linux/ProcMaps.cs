using System.Globalization;

namespace Ckpt.Engine.Linux;

/// <summary>One mapping from /proc/PID/smaps: range, permissions, offset, device, inode, name, VmFlags.</summary>
public sealed record MapsEntry(ulong Start, ulong End, string Permissions, ulong Offset, ulong Inode, string Name, IReadOnlyList<string> VmFlagNames)
{
    public bool Shared => Permissions.Length > 3 && Permissions[3] == 's';
    public uint Protection => (Permissions[0] == 'r' ? 1u : 0) | (Permissions[1] == 'w' ? 2u : 0) | (Permissions[2] == 'x' ? 4u : 0);
    public ulong Length => End - Start;

    /// <summary>The device of the mapped file as maps shows it ("fd:01"; "00:00" for anonymous memory).</summary>
    public string Device { get; init; } = "";

    /// <summary>smaps "ProtectionKey:" (pkey_mprotect); 0 where the kernel shows none.</summary>
    public int ProtectionKey { get; init; }

    /// <summary>Kernel VM_* bits for the VmFlags mnemonics (fs/proc/task_mmu.c show_smap_vma_flags).</summary>
    public ulong VmFlags
    {
        get
        {
            ulong flags = 0;
            foreach (string name in VmFlagNames)
                if (ProcMaps.VmFlagBits.TryGetValue(name, out ulong bit)) flags |= bit;
            return flags;
        }
    }
}

/// <summary>Parsers for /proc/PID/maps and /proc/PID/smaps. API: Read(pid) (maps), ReadSmaps(pid).</summary>
public static class ProcMaps
{
    public static readonly IReadOnlyDictionary<string, ulong> VmFlagBits = new Dictionary<string, ulong>
    {
        ["rd"] = 0x1, ["wr"] = 0x2, ["ex"] = 0x4, ["sh"] = 0x8, ["mr"] = 0x10, ["mw"] = 0x20, ["me"] = 0x40,
        ["ms"] = 0x80, ["gd"] = 0x100, ["pf"] = 0x400, ["lo"] = 0x2000, ["io"] = 0x4000, ["sr"] = 0x8000,
        ["rr"] = 0x10000, ["dc"] = 0x20000, ["de"] = 0x40000, ["ac"] = 0x100000, ["nr"] = 0x200000,
        ["ht"] = 0x400000, ["sf"] = 0x800000, ["wf"] = 0x2000000, ["dd"] = 0x4000000, ["sd"] = 0x8000000,
        ["mm"] = 0x10000000, ["hg"] = 0x20000000, ["nh"] = 0x40000000, ["mg"] = 0x80000000,
    };

    public static List<MapsEntry> Read(int pid) => ProcText.ReadAllLines($"/proc/{pid}/maps").Select(ParseHeader).ToList();

    /// <summary>smaps: the maps line of each VMA plus its VmFlags.</summary>
    public static List<MapsEntry> ReadSmaps(int pid)
    {
        var entries = new List<MapsEntry>();
        MapsEntry? current = null;
        // About 25 lines per mapping, of which only three matter: strings for those only.
        string text = ProcText.ReadAllText($"/proc/{pid}/smaps");
        foreach (Range range in ProcText.LineRanges(text))
        {
            ReadOnlySpan<char> line = text.AsSpan()[range];
            if (line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                if (current is null) throw new FormatException($"/proc/{pid}/smaps: VmFlags before any mapping");
                entries.Add(current with { VmFlagNames = line[8..].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries) });
                current = null;
            }
            else if (line.StartsWith("ProtectionKey:", StringComparison.Ordinal) && current is not null)
            {
                current = current with { ProtectionKey = int.Parse(line[14..].Trim(), CultureInfo.InvariantCulture) };
            }
            else if (IsHeader(line))
            {
                current = ParseHeader(line.ToString());
            }
        }
        return entries;
    }

    // A header starts "start-end " (hex); field lines start "Name:".
    private static bool IsHeader(ReadOnlySpan<char> line)
    {
        int dash = line.IndexOf('-');
        int colon = line.IndexOf(':');
        return dash > 0 && (colon < 0 || dash < colon) && Uri.IsHexDigit(line[0]);
    }

    // "start-end perms offset dev inode   name", the name possibly containing spaces.
    public static MapsEntry ParseHeader(string line)
    {
        string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5) throw new FormatException($"unexpected /proc/PID/maps line: '{line}'");
        string[] range = fields[0].Split('-');
        return new MapsEntry(Hex(range[0]), Hex(range[1]), fields[1], Hex(fields[2]),
            ulong.Parse(fields[4], CultureInfo.InvariantCulture), fields.Length == 6 ? fields[5].Trim() : "", []) { Device = fields[3] };
    }

    private static ulong Hex(string text) => ulong.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
