namespace Ckpt.Engine.Files.Sockets;

/// <summary>Which processes hold a socket (by inode), from their /proc/PID/fd links ("socket:[inode]").</summary>
public static class SocketOwners
{
    public static bool Holds(int pid, ulong inode) => FdLinks(pid).Contains($"socket:[{inode}]");

    /// <summary>", held by process 123 (name)" for the first process this user can see holding the socket, else "".</summary>
    public static string Describe(ulong inode)
    {
        string link = $"socket:[{inode}]";
        foreach (string entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out int pid) || !FdLinks(pid).Contains(link)) continue;
            string name = "";
            try { name = File.ReadAllText($"/proc/{pid}/comm").Trim(); } catch (IOException) { }
            return $", held by process {pid} ({name})";
        }
        return "";
    }

    private static IEnumerable<string> FdLinks(int pid)
    {
        string[] entries;
        try { entries = Directory.GetFileSystemEntries($"/proc/{pid}/fd"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { yield break; }
        foreach (string entry in entries)
        {
            string? target = null;
            try { target = new FileInfo(entry).LinkTarget; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            if (target is not null) yield return target;
        }
    }
}
