using System.Globalization;

namespace CkptPS;

/// <summary>
/// The text of Get-CkptImage's default view (CkptPS.format.ps1xml): one view for the four
/// object types, so a mixed stream stays in one display instead of PowerShell's list
/// fallback; each section gets a header, and lines read like the /proc files they mirror.
/// </summary>
public static class ImageText
{
    public static string Section(object item) => item switch
    {
        CkptTask task => $"task|{task.ImagePath}",
        CkptVma vma => $"maps|{vma.ImagePath}|{vma.Pid}",
        CkptFile file => $"fd|{file.ImagePath}|{file.Pid}",
        CkptThread thread => $"threads|{thread.ImagePath}|{thread.Pid}",
        _ => "",
    };

    private const string ThreadFormat = "{0,7} {1,-16} {2,-12} {3,-20} {4,4} {5,-10} {6,7} {7,16} {8}";

    public static string Header(object item) => item switch
    {
        CkptTask task => $"Tasks in {task.ImagePath}\n\n" +
            " Saved(M)  VMAs Files Threads      Id    PPid    Uid ProcessName      Exe\n" +
            " --------  ---- ----- -------      --    ----    --- -----------      ---",
        CkptVma vma => $"Memory of {vma.Pid} (like /proc/{vma.Pid}/maps)\n\n" +
            "Address                   Perm Offset   Dev       Inode   Size  Saved Type       Path\n" +
            "-------                   ---- ------   ---       -----   ----  ----- ----       ----",
        CkptFile file => $"Files of {file.Pid} (like ls -l /proc/{file.Pid}/fd)\n\n" +
            "Mode         Fd   Target                                   Pos Kind            Flags / State\n" +
            "----         --   ------                                   --- ----            -------------",
        CkptThread thread => $"Threads of {thread.Pid} (like ps -T -p {thread.Pid})\n\n" +
            string.Format(CultureInfo.InvariantCulture, ThreadFormat, "Tid", "Name", "State", "Syscall", "Nice", "Policy", "Pending", "Blocked", "SignalStack") + "\n" +
            string.Format(CultureInfo.InvariantCulture, ThreadFormat, "---", "----", "-----", "-------", "----", "------", "-------", "-------", "-----------"),
        _ => "",
    };

    public static string Line(object item) => item switch
    {
        CkptTask task => string.Format(CultureInfo.InvariantCulture,
            "{0,9:N2} {1,5} {2,5} {3,7} {4,7} {5,7} {6,6} {7,-16} {8}",
            task.SavedBytes / 1048576.0, task.VmaCount, task.FileCount, task.ThreadCount, task.Pid, task.Ppid,
            task.Uid, task.Comm, task.Exe),
        CkptVma vma => string.Format(CultureInfo.InvariantCulture,
            "{0:x12}-{1:x12} {2} {3:x8} {4,-5} {5,9} {6,6} {7,6} {8,-10} {9}",
            vma.Start, vma.End, vma.Protection, vma.Offset, vma.DeviceText, vma.Inode,
            HumanSize.Format(vma.Size), HumanSize.Format(vma.SavedBytes), vma.VmaType, vma.Path),
        CkptFile file => string.Format(CultureInfo.InvariantCulture,
            "{0} {1,4} {2,-40} {3,5} {4,-15} {5}{6}",
            file.LinkMode, file.Fd, "-> " + file.Path, file.Position, file.Kind, file.Flags, file.State.Length > 0 ? " / " + file.State : ""),
        CkptThread thread => string.Format(CultureInfo.InvariantCulture, ThreadFormat,
            thread.Tid, thread.Name, thread.State, thread.Syscall, thread.Nice, thread.Policy, thread.PendingSignals,
            thread.BlockedSignals.ToString("x16", CultureInfo.InvariantCulture), thread.SignalStack),
        _ => item.ToString() ?? "",
    };
}
