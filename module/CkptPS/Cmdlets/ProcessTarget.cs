using System.Management.Automation;

namespace CkptPS.Cmdlets;

/// <summary>A live process named by the user, checked in /proc before the engine is started.</summary>
internal sealed class ProcessTarget
{
    public required int Pid { get; init; }
    public required string Name { get; init; }
    /// <summary>What the user passed (a pid or a Process), the ErrorRecord's target object.</summary>
    public required object Source { get; init; }
    public string Description => $"process {Name} ({Pid})";

    public static bool TryFind(int pid, object source, out ProcessTarget? target, out ErrorRecord? error)
    {
        target = null;
        error = null;
        string? tgid = ReadStatusField(pid, "Tgid");
        if (tgid is null)
        {
            error = new ErrorRecord(new ArgumentException($"Cannot find a process with the process identifier {pid}."),
                "ProcessNotFound", ErrorCategory.ObjectNotFound, source);
            return false;
        }
        if (tgid != pid.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            error = new ErrorRecord(new ArgumentException($"{pid} is a thread of process {tgid}, not a process."),
                "NotAProcess", ErrorCategory.InvalidArgument, source);
            return false;
        }
        target = new ProcessTarget { Pid = pid, Name = ReadComm(pid) ?? pid.ToString(System.Globalization.CultureInfo.InvariantCulture), Source = source };
        return true;
    }

    /// <summary>The process name (/proc/PID/comm), null when the process is gone.</summary>
    public static string? ReadComm(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n'); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    private static string? ReadStatusField(int pid, string field)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal)) return line[(field.Length + 1)..].Trim();
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
