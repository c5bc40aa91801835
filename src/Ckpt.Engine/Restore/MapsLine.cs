using System.Globalization;

namespace Ckpt.Engine.Restore;

/// <summary>One line of /proc/PID/maps: range, permissions and the name column.</summary>
public sealed record MapsLine(ulong Start, ulong End, string Permissions, ulong Offset, string Name)
{
    public static IReadOnlyList<MapsLine> ReadAll(int pid)
    {
        var lines = new List<MapsLine>();
        foreach (string line in File.ReadAllLines($"/proc/{pid}/maps"))
            lines.Add(Parse(line));
        return lines;
    }

    // "start-end perms offset dev inode   name", the name possibly containing spaces.
    public static MapsLine Parse(string line)
    {
        string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5)
            throw new FormatException($"unexpected /proc/PID/maps line: '{line}'");
        string[] range = fields[0].Split('-');
        return new MapsLine(
            ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            fields[1],
            ulong.Parse(fields[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            fields.Length == 6 ? fields[5].Trim() : "");
    }

    public bool IsSpecial => Name is "[vdso]" or "[vvar]" or "[vvar_vclock]" or "[vsyscall]";
}
