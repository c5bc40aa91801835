using System.Globalization;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Parsers for the small /proc/PID files. API: ProcStatus.Read (key -> value of status),
/// ProcStat.Read (fields of stat, 1-based as in proc(5)), ProcFdInfo.Read, ProcLimits.Read,
/// ProcAuxv.Read. Each throws a <see cref="FormatException"/> naming the file on bad contents.
/// </summary>
public sealed class ProcStatus(string text)
{
    // The text as read, each line looked up when asked for: a restore reads the status of every process
    // it makes for one or two lines, and splitting all fifty-odd into a dictionary was most of its allocations.
    public static ProcStatus Read(int pid) => new(ProcText.ReadAllText($"/proc/{pid}/status"));

    public string Text(string key) => Find(key) ?? throw new FormatException($"/proc/PID/status has no '{key}' line");

    private string? Find(string key)
    {
        for (int start = 0; start < text.Length;)
        {
            int end = text.IndexOf('\n', start);
            if (end < 0) end = text.Length;
            ReadOnlySpan<char> line = text.AsSpan(start, end - start);
            if (line.Length > key.Length && line[key.Length] == ':' && line.StartsWith(key, StringComparison.Ordinal))
                return line[(key.Length + 1)..].Trim().ToString();
            start = end + 1;
        }
        return null;
    }

    public bool Has(string key) => Find(key) is not null;

    public long Number(string key) => long.Parse(Text(key), CultureInfo.InvariantCulture);

    /// <summary>Whitespace-separated decimal numbers (Uid:, Gid:, Groups:).</summary>
    public uint[] Numbers(string key) => Text(key).Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)
        .Select(t => uint.Parse(t, CultureInfo.InvariantCulture)).ToArray();

    public ulong HexNumber(string key) => ulong.Parse(Text(key), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    public uint OctalNumber(string key) => Convert.ToUInt32(Text(key), 8);
}

/// <summary>/proc/PID/stat; the comm field may contain spaces and parentheses, so split after the last ')'.</summary>
public sealed class ProcStat(string comm, string[] rest)
{
    public string Comm { get; } = comm;

    public static ProcStat Read(int pid)
    {
        string text = ProcText.ReadAllText($"/proc/{pid}/stat");
        int open = text.IndexOf('('), close = text.LastIndexOf(')');
        if (open < 0 || close < open) throw new FormatException($"/proc/{pid}/stat: no (comm) field");
        return new ProcStat(text[(open + 1)..close], text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>
    /// True when the process has exited but is not reaped yet (state Z or X), false while it
    /// runs; null when it is gone altogether.
    /// </summary>
    /// <summary>PF_EXITING in the flags of /proc/PID/stat (field 9): the leader is on its way out, not yet a zombie; false once gone.</summary>
    public static bool IsExiting(int pid)
    {
        const long PF_EXITING = 0x4;
        try { return (Read(pid).Field(9) & PF_EXITING) != 0; }
        catch (IOException) { return false; }
    }

    public static bool? IsZombie(int pid)
    {
        try
        {
            string text = ProcText.ReadAllText($"/proc/{pid}/stat");
            return text[text.LastIndexOf(')') + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Field number as in proc(5) (1 = pid, 3 = state, ...).</summary>
    public long Field(int number) => long.Parse(rest[number - 3], CultureInfo.InvariantCulture);

    public ulong UnsignedField(int number) => ulong.Parse(rest[number - 3], CultureInfo.InvariantCulture);
}

/// <summary>
/// /proc/PID/fdinfo/FD: pos, flags (octal), and every "key: value" line by key (value trimmed), for
/// the lines a descriptor kind adds (eventfd-count, tfd, ...).
/// </summary>
public sealed record ProcFdInfo(long Position, uint Flags, IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>The "lock:" lines (<see cref="Files.FileLocks"/>), from the same read.</summary>
    public IReadOnlyList<string> LockLines { get; init; } = [];

    public static ProcFdInfo Read(int pid, int fd)
    {
        long position = 0;
        uint flags = 0;
        var fields = new Dictionary<string, string>();
        List<string>? locks = null;
        foreach (string line in ProcText.ReadAllLines($"/proc/{pid}/fdinfo/{fd}"))
        {
            if (line.StartsWith("pos:", StringComparison.Ordinal)) position = long.Parse(line[4..].Trim(), CultureInfo.InvariantCulture);
            else if (line.StartsWith("flags:", StringComparison.Ordinal)) flags = Convert.ToUInt32(line[6..].Trim(), 8);
            else if (line.StartsWith("lock:", StringComparison.Ordinal)) (locks ??= []).Add(line);
            int colon = line.IndexOf(':');
            if (colon > 0) fields.TryAdd(line[..colon], line[(colon + 1)..].Trim());
        }
        return new ProcFdInfo(position, flags, fields) { LockLines = (IReadOnlyList<string>?)locks ?? [] };
    }
}

/// <summary>/proc/PID/limits, in RLIMIT_* order; "unlimited" is RLIM_INFINITY.</summary>
public static class ProcLimits
{
    public const int Count = 16;

    public static (ulong Current, ulong Maximum)[] Read(int pid)
    {
        string[] lines = ProcText.ReadAllLines($"/proc/{pid}/limits");
        var limits = new (ulong, ulong)[Count];
        // Row order is RLIMIT_CPU..RLIMIT_RTTIME after the heading; the values start at column 26.
        for (int i = 0; i < Count; i++)
        {
            string line = lines[i + 1];
            string[] values = line[26..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            limits[i] = (Value(values[0], pid), Value(values[1], pid));
        }
        return limits;
    }

    private static ulong Value(string text, int pid) => text == "unlimited" ? ulong.MaxValue
        : ulong.TryParse(text, CultureInfo.InvariantCulture, out ulong v) ? v : throw new FormatException($"/proc/{pid}/limits: bad value '{text}'");
}

/// <summary>/proc/PID/auxv as (type, value) words, AT_NULL included.</summary>
public static class ProcAuxv
{
    public static ulong[] Read(int pid)
    {
        byte[] bytes = ProcText.ReadAllBytes($"/proc/{pid}/auxv");
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes).ToArray();
    }
}
