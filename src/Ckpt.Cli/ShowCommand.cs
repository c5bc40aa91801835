using System.CommandLine;
using System.Text;
using System.Text.Json;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Cli;

/// <summary>
/// `ckpt show FILE [--json]`: what an image holds, through ImageReader alone. Page contents are
/// skipped (seeked over), never read, so the checksum is not verified here.
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
            ImageSummary summary;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
                summary = ImageSummary.Read(stream);
            Console.Out.Write(json ? summary.ToJson() : summary.ToText());
            return summary.Error is null ? 0 : 5;
        }
        catch (Exception e) when (e is ImageFormatException or FailedCheckpointException)
        {
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

/// <summary>The records of an image gathered for display (no page contents).</summary>
internal sealed class ImageSummary
{
    public HeaderRecord Header;
    public TaskRecord Task;
    public CredentialsRecord Credentials;
    public List<string> Strings { get; } = [];
    public List<(VmaRecord Vma, string? Path)> Vmas { get; } = [];
    public List<ulong> VmaPagesSaved { get; } = [];   // pages in each VMA's chunks, counted from their headers
    public Dictionary<int, string> FilePaths { get; } = [];
    public List<FileDescriptorRecord> Descriptors { get; } = [];
    public List<SignalActionRecord> Handlers { get; } = [];
    public List<SignalPendingRecord> Pending { get; } = [];
    public List<ThreadRecord> Threads { get; } = [];
    public List<CpuRecord> Cpus { get; } = [];
    public string? Error;
    public long Records;
    public long Bytes;

    public static ImageSummary Read(Stream stream)
    {
        var summary = new ImageSummary();
        using var reader = new ImageReader(stream, leaveOpen: true, verifyChecksum: false);
        summary.Header = reader.ReadHeader(); // names the reason of a checkpoint refused before its header
        while (reader.PeekType() is { } type)
        {
            switch (type)
            {
                case RecordType.Task: var task = reader.Read<TaskRecord>(); if (task.Pid == task.Tgid) summary.Task = task; break;
                case RecordType.String: summary.Strings.Add(reader.ReadString()); break;
                case RecordType.Credentials: summary.Credentials = reader.Read<CredentialsRecord>(); break;
                case RecordType.File:
                    var file = reader.Read<FileRecord>();
                    summary.FilePaths[file.ObjRef] = reader.ReadTrailingString();
                    break;
                case RecordType.Vma:
                    var vma = reader.Read<VmaRecord>();
                    summary.Vmas.Add((vma, summary.FilePaths.GetValueOrDefault(vma.FileObjRef)));
                    summary.VmaPagesSaved.Add(0);
                    break;
                case RecordType.PageArray:
                    uint pages = reader.Read<PageArrayRecord>().PageCount;
                    if (summary.VmaPagesSaved.Count == 0) throw new ImageFormatException(RecordType.PageArray, reader.CurrentRecordOffset, "page array before any VMA");
                    summary.VmaPagesSaved[^1] += pages;
                    break;
                case RecordType.FileDescriptor: summary.Descriptors.Add(reader.Read<FileDescriptorRecord>()); break;
                case RecordType.SignalAction: summary.Handlers.Add(reader.Read<SignalActionRecord>()); break;
                case RecordType.SignalPending: summary.Pending.Add(reader.Read<SignalPendingRecord>()); break;
                case RecordType.Thread: summary.Threads.Add(reader.Read<ThreadRecord>()); break;
                case RecordType.Cpu: summary.Cpus.Add(reader.Read<CpuRecord>()); break;
                case RecordType.Error:
                    reader.Read<ErrorRecord>();
                    summary.Error = reader.ReadTrailingString();
                    break;
                case RecordType.Tail:
                    reader.ReadTail();
                    summary.Records = reader.RecordCount;
                    summary.Bytes = reader.Position;
                    return summary;
                // Records shown only as counts: SkipRecord validates their length against RecordCatalog
                // and refuses a record type CkptPS never writes.
                default: reader.SkipRecord(); break;
            }
        }
        throw new ImageFormatException(null, reader.Position, "the image ends without a tail record (truncated)");
    }

    private unsafe string Comm()
    {
        fixed (byte* comm = Task.Comm) return Encoding.UTF8.GetString(comm, new ReadOnlySpan<byte>(comm, 16).IndexOf((byte)0) is var n and >= 0 ? n : 16);
    }

    private unsafe string Kernel()
    {
        fixed (byte* release = Header.KernelRelease) return Encoding.UTF8.GetString(release, new ReadOnlySpan<byte>(release, 65).IndexOf((byte)0));
    }

    private string Exe => Strings.Count > 2 ? Strings[2] : "";
    private ulong PagesSaved => (ulong)VmaPagesSaved.Sum(p => (long)p);
    private DateTime Created => DateTime.UnixEpoch.AddTicks(Header.CreatedUnixNanoseconds / 100);

    public string ToText()
    {
        var text = new StringBuilder();
        if (Error is not null) text.AppendLine($"FAILED CHECKPOINT: {Error}");
        text.AppendLine($"image: format {Header.FormatVersion}, kernel {Kernel()}, created {Created:u}, {Bytes} bytes, {Records} records");
        text.AppendLine($"task: pid {Task.Pid} ({Comm()}) {Exe}, ppid {Task.Ppid}, sid {Task.Sid}, threads {Task.ThreadCount}");
        text.AppendLine($"credentials: uid {Credentials.Uid}/{Credentials.Euid} gid {Credentials.Gid}/{Credentials.Egid}");
        text.AppendLine($"memory: {Vmas.Count} VMAs, {PagesSaved} pages saved");
        foreach (var ((vma, path), pages) in Vmas.Zip(VmaPagesSaved))
            text.AppendLine($"  {vma.VmStart:x12}-{vma.VmEnd:x12} {Protection(vma.Protection)} {vma.VmaType,-10} {pages,8} pages {path}");
        text.AppendLine($"files: {Descriptors.Count} descriptors");
        foreach (var fd in Descriptors) text.AppendLine($"  fd {fd.Fd}: {FilePaths.GetValueOrDefault(fd.FileObjRef)}{(fd.CloseOnExec != 0 ? " (cloexec)" : "")}");
        var handled = Handlers.Where(h => h.Handler > 1).Select(h => h.Signal).ToList();
        text.AppendLine($"signals: handlers for [{string.Join(",", handled)}], {Pending.Count} pending");
        for (int i = 0; i < Threads.Count; i++)
            text.AppendLine($"thread {Threads[i].Tid}: {Threads[i].SyscallState} (syscall {Threads[i].SyscallNumber}), rip 0x{(i < Cpus.Count ? Cpus[i].Rip : 0):x}");
        return text.ToString();
    }

    public string ToJson()
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteBoolean("ok", Error is null);
            if (Error is not null) json.WriteString("error", Error);
            json.WriteNumber("formatVersion", Header.FormatVersion);
            json.WriteString("kernel", Kernel());
            json.WriteString("created", Created);
            json.WriteNumber("bytes", Bytes);
            json.WriteNumber("records", Records);
            json.WriteNumber("pid", Task.Pid);
            json.WriteString("comm", Comm());
            json.WriteString("exe", Exe);
            json.WriteNumber("uid", Credentials.Uid);
            json.WriteNumber("gid", Credentials.Gid);
            json.WriteNumber("pagesSaved", PagesSaved);
            json.WriteStartArray("vmas");
            foreach (var ((vma, path), pages) in Vmas.Zip(VmaPagesSaved))
            {
                json.WriteStartObject();
                json.WriteString("start", $"0x{vma.VmStart:x}");
                json.WriteString("end", $"0x{vma.VmEnd:x}");
                json.WriteString("protection", Protection(vma.Protection));
                json.WriteString("type", vma.VmaType.ToString());
                json.WriteNumber("pages", pages);
                if (path is not null) json.WriteString("path", path);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartArray("files");
            foreach (var fd in Descriptors)
            {
                json.WriteStartObject();
                json.WriteNumber("fd", fd.Fd);
                json.WriteString("path", FilePaths.GetValueOrDefault(fd.FileObjRef));
                json.WriteBoolean("closeOnExec", fd.CloseOnExec != 0);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteNumber("pendingSignals", Pending.Count);
            json.WriteStartArray("threads");
            foreach (var thread in Threads)
            {
                json.WriteStartObject();
                json.WriteNumber("tid", thread.Tid);
                json.WriteString("syscallState", thread.SyscallState.ToString());
                json.WriteNumber("syscall", thread.SyscallNumber);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static string Protection(uint p) => $"{((p & 1) != 0 ? 'r' : '-')}{((p & 2) != 0 ? 'w' : '-')}{((p & 4) != 0 ? 'x' : '-')}";
}
