using System.CommandLine;
using System.Text;
using System.Text.Json;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Cli;

/// <summary>
/// `ckpt show FILE [--json]`: what an image holds, read by <see cref="ImageModelReader"/> (the one
/// reader of the record order). Page contents are skipped (seeked over), never read, so the
/// checksum is not verified here.
/// </summary>
public static class ShowCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "image file" };
        var json = new Option<bool>("--json") { Description = "one JSON object instead of text" };
        var command = new Command("show", "Describe an image without reading its page contents") { file, json };
        command.SetAction(parse => Run(parse.GetValue(file)!, parse.GetValue(json)));
        return command;
    }

    private static int Run(string path, bool json)
    {
        try
        {
            ImageModel image;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
            using (var reader = new ImageReader(stream, leaveOpen: true, verifyChecksum: false))
                image = ImageModelReader.Read(reader);
            Console.Out.Write(json ? ImageDescription.ToJson(image) : ImageDescription.ToText(image));
            return 0;
        }
        catch (Exception e) when (e is ImageFormatException or FailedCheckpointException)
        {
            // A failed checkpoint's image names the checkpoint's reason; a damaged or truncated one the record and offset.
            Console.Error.WriteLine($"ckpt: {path}: {e.Message}");
            return 5;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            Console.Error.WriteLine($"ckpt: {path}: no such file");
            return 3;
        }
        catch (UnauthorizedAccessException e)
        {
            Console.Error.WriteLine($"ckpt: {path}: {e.Message}");
            return 4;
        }
    }
}

/// <summary>An <see cref="ImageModel"/> as `ckpt show` prints it, text or JSON.</summary>
internal static class ImageDescription
{
    // ", shared with processes A, B (WHAT)" when other processes of the image use the same object.
    private static string SharedWith(ImageModel image, ProcessImage process, Func<ProcessImage, bool> uses, string what)
    {
        var others = image.Processes.Where(p => p != process && uses(p)).Select(p => p.Pid).ToList();
        return others.Count == 0 ? "" : $", shared with process{(others.Count == 1 ? "" : "es")} {string.Join(", ", others)} ({what})";
    }

    public static string ToText(ImageModel image)
    {
        var text = new StringBuilder();
        text.AppendLine($"image: format {image.Header.FormatVersion}, kernel {Kernel(image)}, created {Created(image):u}, {image.Bytes} bytes, {image.RecordCount} records");
        IReadOnlyList<TreeEntry> tree = ProcessTree.Of(image);
        text.AppendLine($"tree: {tree.Count} process{(tree.Count == 1 ? "" : "es")}, {image.Tree.TaskCount} tasks");
        foreach (TreeEntry entry in tree)
        {
            string what = entry.ExitStatus is { } status ? $"zombie, {ProcessTree.DescribeExit(status)}" : $"{entry.State}, {entry.Threads} thread{(entry.Threads == 1 ? "" : "s")}";
            text.AppendLine($"  {new string(' ', 2 * entry.Depth)}{entry.Pid} {entry.Name} (ppid {entry.Ppid}, pgid {entry.Pgid}, sid {entry.Sid}; {what})");
        }
        foreach (ProcessImage process in image.Processes)
        {
            TaskRecord task = process.Task;
            CredentialsRecord credentials = process.Credentials;
            text.AppendLine($"task: pid {task.Pid} ({Comm(task)}) {process.ExePath}, ppid {task.Ppid}, pgid {task.Pgid}, sid {task.Sid}, threads {task.ThreadCount}");
            text.AppendLine($"credentials: uid {credentials.Uid}/{credentials.Euid} gid {credentials.Gid}/{credentials.Egid}");
            text.AppendLine($"memory: {process.Memory.Vmas.Count} VMAs, {PagesSaved(process)} pages saved");
            foreach (VmaImage vma in process.Memory.Vmas)
                text.AppendLine($"  {vma.Record.VmStart:x12}-{vma.Record.VmEnd:x12} {Protection(vma.Record.Protection)} {vma.Record.VmaType,-10} {vma.PagesSaved,8} pages{(vma.File is null ? "" : " " + vma.File.Path)}{SharingText(vma)}");
            if (process.Memory.Membarrier != 0) text.AppendLine($"membarrier: registered {process.Memory.Membarrier}");
            text.AppendLine($"files: {process.FileTable.Descriptors.Count} descriptors{SharedWith(image, process, p => ReferenceEquals(p.FileTable, process.FileTable), $"descriptor table objref {process.FileTable.ObjRef}, CLONE_FILES")}");
            if (process.SharedFs is { } fs)
                text.AppendLine($"fs: cwd {fs.Cwd}, umask 0{Convert.ToString(fs.Record.Umask, 8)}{SharedWith(image, process, p => ReferenceEquals(p.SharedFs, fs), $"fs objref {fs.ObjRef}, CLONE_FS")}");
            foreach (FileDescriptorRecord fd in process.FileTable.Descriptors)
            {
                FileImage file = process.FileTable.Files[fd.FileObjRef];
                string state = FileStateText.Describe(file);
                text.AppendLine($"  fd {fd.Fd}: {file.Path} {file.Record.Kind}{(state.Length > 0 ? $": {state}" : "")}{(fd.CloseOnExec != 0 ? " (cloexec)" : "")}{SocketText(file)}");
            }
            foreach (FileLockRecord fileLock in process.FileTable.Locks)
                text.AppendLine($"  lock: {LockText(fileLock)} on {process.FileTable.Files[fileLock.FileObjRef].Path}");
            var handled = process.SignalHandlers.Actions.Where(h => h.Handler > 1).Select(h => h.Signal).ToList();
            text.AppendLine($"signals: handlers for [{string.Join(",", handled)}], {PendingCount(process)} pending");
            foreach (PosixTimerRecord timer in process.Signal.PosixTimers)
                text.AppendLine($"  posix timer {timer.TimerId}: {TimerText(timer)}");
            if (process.Signal.ControllingTerminal is { } terminal)
                text.AppendLine($"  controlling terminal: {FileStateText.ControllingTerminal(terminal)}");
            foreach (ThreadImage thread in process.Threads)
            {
                ThreadRecord record = thread.Thread;
                string syscall = SyscallNames.Name(record.SyscallNumber) is { } name ? $"{record.SyscallNumber} {name}" : $"{record.SyscallNumber}";
                text.AppendLine($"thread {thread.Tid} '{thread.Name}': {record.SyscallState} (syscall {syscall}), rip 0x{thread.Cpu.Rip:x}");
            }
        }
        return text.ToString();
    }

    private static string LockText(FileLockRecord fileLock) =>
        $"{fileLock.Kind} {(fileLock.Exclusive != 0 ? "write" : "read")}" + (fileLock.Kind == FileLockKind.Flock ? ""
            : $" bytes {fileLock.Start}..{(fileLock.Length == 0 ? "EOF" : (fileLock.Start + fileLock.Length - 1).ToString(System.Globalization.CultureInfo.InvariantCulture))}");

    private static string TimerText(PosixTimerRecord timer) =>
        $"clock {timer.ClockId}, {timer.Notify}{(timer.Notify == PosixTimerNotify.None ? "" : $" signal {timer.Signal}")}"
        + $"{(timer.Notify == PosixTimerNotify.ThreadId ? $" to thread {timer.NotifyTid}" : "")}, "
        + (timer.ValueNanoseconds == 0 ? "disarmed" : $"{timer.ValueNanoseconds / 1e9:0.###} s left") + $", interval {timer.IntervalNanoseconds / 1e9:0.###} s";

    public static string ToJson(ImageModel image)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            // The first process's fields stay at the top level (as before multi-process images);
            // "processes" has one such object per process.
            ProcessImage first = image.Processes[0];
            json.WriteStartObject();
            json.WriteBoolean("ok", true);
            json.WriteNumber("formatVersion", image.Header.FormatVersion);
            json.WriteString("kernel", Kernel(image));
            json.WriteString("created", Created(image));
            json.WriteNumber("bytes", image.Bytes);
            json.WriteNumber("records", image.RecordCount);
            json.WriteNumber("taskCount", image.Tree.TaskCount);
            WriteProcess(json, first);
            json.WriteStartArray("tree");
            foreach (TreeEntry entry in ProcessTree.Of(image))
            {
                json.WriteStartObject();
                json.WriteNumber("pid", entry.Pid);
                json.WriteNumber("ppid", entry.Ppid);
                json.WriteNumber("pgid", entry.Pgid);
                json.WriteNumber("sid", entry.Sid);
                json.WriteString("state", entry.State);
                json.WriteString("name", entry.Name);
                json.WriteNumber("threads", entry.Threads);
                if (entry.ExitStatus is { } status) json.WriteNumber("exitStatus", status);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartArray("processes");
            foreach (ProcessImage process in image.Processes)
            {
                json.WriteStartObject();
                WriteProcess(json, process);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteProcess(Utf8JsonWriter json, ProcessImage process)
    {
        json.WriteNumber("pid", process.Task.Pid);
        json.WriteString("comm", Comm(process.Task));
        json.WriteString("exe", process.ExePath);
        json.WriteNumber("uid", process.Credentials.Uid);
        json.WriteNumber("gid", process.Credentials.Gid);
        json.WriteNumber("pagesSaved", PagesSaved(process));
        if (process.Memory.Membarrier != 0) json.WriteString("membarrier", process.Memory.Membarrier.ToString());
        json.WriteStartArray("vmas");
        foreach (VmaImage vma in process.Memory.Vmas)
        {
            json.WriteStartObject();
            json.WriteString("start", $"0x{vma.Record.VmStart:x}");
            json.WriteString("end", $"0x{vma.Record.VmEnd:x}");
            json.WriteString("protection", Protection(vma.Record.Protection));
            json.WriteString("type", vma.Record.VmaType.ToString());
            json.WriteNumber("pages", vma.PagesSaved);
            if (vma.File is { } file) json.WriteString("path", file.Path);
            if (vma.SharedMemory is { } shared) json.WriteNumber("sharedMemory", shared.ObjRef);
            if (vma.InheritedPages.Count > 0) json.WriteNumber("inheritedPages", vma.InheritedPages.Count);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteStartArray("files");
        foreach (FileDescriptorRecord fd in process.FileTable.Descriptors)
        {
            json.WriteStartObject();
            json.WriteNumber("fd", fd.Fd);
            json.WriteString("path", process.FileTable.Files[fd.FileObjRef].Path);
            json.WriteString("kind", process.FileTable.Files[fd.FileObjRef].Record.Kind.ToString());
            json.WriteString("state", FileStateText.Describe(process.FileTable.Files[fd.FileObjRef]));
            json.WriteBoolean("closeOnExec", fd.CloseOnExec != 0);
            if (process.FileTable.Files[fd.FileObjRef].Socket is { } socket) WriteSocket(json, socket);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteStartArray("locks");
        foreach (FileLockRecord fileLock in process.FileTable.Locks)
        {
            json.WriteStartObject();
            json.WriteString("path", process.FileTable.Files[fileLock.FileObjRef].Path);
            json.WriteString("kind", fileLock.Kind.ToString());
            json.WriteBoolean("exclusive", fileLock.Exclusive != 0);
            json.WriteNumber("start", fileLock.Start);
            json.WriteNumber("length", fileLock.Length);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteStartArray("posixTimers");
        foreach (PosixTimerRecord timer in process.Signal.PosixTimers)
        {
            json.WriteStartObject();
            json.WriteNumber("id", timer.TimerId);
            json.WriteNumber("clock", timer.ClockId);
            json.WriteString("notify", timer.Notify.ToString());
            json.WriteNumber("signal", timer.Signal);
            json.WriteNumber("notifyTid", timer.NotifyTid);
            json.WriteNumber("valueNanoseconds", timer.ValueNanoseconds);
            json.WriteNumber("intervalNanoseconds", timer.IntervalNanoseconds);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        if (process.Signal.ControllingTerminal is { } terminal) json.WriteString("controllingTerminal", FileStateText.ControllingTerminal(terminal));
        json.WriteNumber("pendingSignals", PendingCount(process));
        json.WriteStartArray("threads");
        foreach (ThreadImage thread in process.Threads)
        {
            ThreadRecord record = thread.Thread;
            json.WriteStartObject();
            json.WriteNumber("tid", thread.Tid);
            json.WriteString("name", thread.Name);
            json.WriteString("syscallState", record.SyscallState.ToString());
            json.WriteNumber("syscall", record.SyscallNumber);
            if (SyscallNames.Name(record.SyscallNumber) is { } name) json.WriteString("syscallName", name);
            if (thread.RestartBlock is { } block) json.WriteString("restart", block.Function.ToString());
            json.WriteString("blockedSignals", $"0x{record.BlockedSignals:x}");
            json.WriteNumber("pendingSignals", thread.Pending.Count);
            json.WriteString("rip", $"0x{thread.Cpu.Rip:x}");
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }

    // Process-wide and thread-directed signals together, as the single "pending" count always was.
    /// <summary>" [unix stream Listening /tmp/app.sock backlog 7]" for a socket, "" for other files.</summary>
    private static string SocketText(FileImage file)
    {
        if (file.Socket is not { } socket) return "";
        string text = $" [{socket.Description} {socket.Record.State}";
        if (socket.LocalAddress.Length > 0) text += " " + socket.LocalAddress;
        if (socket.Record.Options.HasFlag(SocketOptions.BoundFileDeleted)) text += " (file deleted)";
        if (socket.PeerAddress.Length > 0) text += " -> " + socket.PeerAddress;
        if (socket.Record.State == SocketState.Listening) text += $" backlog {socket.Record.Backlog}";
        if (socket.Record.PeerInode != 0) text += $" pair of socket:[{socket.Record.PeerInode}]";
        if (socket.PendingConnection is { } pending) text += $" to socket:[{pending.ListenerInode}] (accept queue place {pending.Position + 1})";
        if (socket.Record.QueuedMessages > 0) text += $", {socket.Record.QueuedMessages} queued ({socket.Record.QueuedBytes} bytes)";
        if (socket.InFlight.Count > 0) text += $", {socket.InFlight.Values.Sum(files => files.Count)} descriptors in flight ({string.Join(", ", socket.InFlight.Values.SelectMany(files => files).Select(f => f.Path).Distinct())})";
        if (socket.Record.Shutdown != SocketShutdown.None) text += $", shut down {socket.Record.Shutdown}";
        return text + "]";
    }

    private static void WriteSocket(Utf8JsonWriter json, SocketImage socket)
    {
        json.WriteStartObject("socket");
        json.WriteString("family", socket.Record.Family.ToString());
        json.WriteString("type", socket.Record.SocketType.ToString());
        json.WriteNumber("protocol", socket.Record.Protocol);
        json.WriteString("state", socket.Record.State.ToString());
        json.WriteString("localAddress", socket.LocalAddress);
        json.WriteString("peerAddress", socket.PeerAddress);
        json.WriteNumber("peerInode", socket.Record.PeerInode);
        json.WriteNumber("backlog", socket.Record.Backlog);
        json.WriteString("shutdown", socket.Record.Shutdown.ToString());
        json.WriteString("options", socket.Record.Options.ToString());
        json.WriteNumber("queuedMessages", socket.Record.QueuedMessages);
        json.WriteNumber("queuedBytes", socket.Record.QueuedBytes);
        if (socket.PendingConnection is { } pending)
        {
            json.WriteNumber("listenerInode", pending.ListenerInode);
            json.WriteNumber("acceptQueuePlace", pending.Position + 1);
        }
        if (socket.Datagrams.Count > 0)
        {
            json.WriteStartArray("datagramSources");
            for (int i = 0; i < socket.Datagrams.Count; i++) json.WriteStringValue(socket.SourceOf(i));
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }

    private static int PendingCount(ProcessImage process) =>
        process.Signal.SharedPending.Count + process.Threads.Sum(t => t.Pending.Count);

    private static ulong PagesSaved(ProcessImage process) => (ulong)process.Memory.Vmas.Sum(v => (long)v.PagesSaved);

    private static unsafe string Comm(TaskRecord task) => RecordText.CString(task.Comm, 16);

    private static unsafe string Kernel(ImageModel image)
    {
        HeaderRecord header = image.Header;
        return RecordText.CString(header.KernelRelease, 65);
    }

    private static DateTime Created(ImageModel image) => DateTime.UnixEpoch.AddTicks(image.Header.CreatedUnixNanoseconds / 100);

    private static string Protection(uint p) => $"{((p & 1) != 0 ? 'r' : '-')}{((p & 2) != 0 ? 'w' : '-')}{((p & 4) != 0 ? 'x' : '-')}";

    // A shared anonymous VMA's object, and pages that are its parent's (stored once, with the parent).
    private static string SharingText(VmaImage vma) =>
        (vma.SharedMemory is { } shared ? $" (shared memory {shared.ObjRef}: {shared.Record.SizePages} pages)" : "")
        + (vma.InheritedPages.Count > 0 ? $" (+{vma.InheritedPages.Count} pages as the parent's)" : "");
}
