using System.Runtime.InteropServices;
using Ckpt.Image;
using Ckpt.Image.Records;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Reads a whole image (checksum included) into a <see cref="RestorePlan"/>, in the order
/// docs/ARCHITECTURE.md fixes. Every problem is an <see cref="ImageFormatException"/> naming
/// the record and its offset; an image of a failed checkpoint is a <see cref="FailedCheckpointException"/>.
/// </summary>
public static class RestorePlanReader
{
    /// <summary>Reads an image file; "-" spools standard input to an unlinked temporary file first.</summary>
    public static RestorePlan Read(string path, Stream? standardInput = null)
    {
        SafeFileHandle handle = path == "-" ? SpoolToUnlinkedFile(standardInput ?? Console.OpenStandardInput())
            : File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        try
        {
            // A second open of the same file for the sequential pass: the plan keeps the first.
            using var stream = new FileStream($"/proc/self/fd/{handle.DangerousGetHandle()}", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1 << 20);
            using var reader = new ImageReader(stream, leaveOpen: true);
            return ReadPlan(reader, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    // The image may come from a pipe: keep it in a file nobody can see (and that vanishes with us).
    private static SafeFileHandle SpoolToUnlinkedFile(Stream input)
    {
        string temporary = Path.Combine(Path.GetTempPath(), $"ckpt-restore-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        SafeFileHandle handle = File.OpenHandle(temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
        File.Delete(temporary);
        byte[] buffer = new byte[1 << 20];
        long offset = 0;
        int n;
        while ((n = input.Read(buffer)) > 0)
        {
            RandomAccess.Write(handle, buffer.AsSpan(0, n), offset);
            offset += n;
        }
        return handle;
    }

    private static RestorePlan ReadPlan(ImageReader reader, SafeFileHandle handle)
    {
        HeaderRecord header = reader.ReadHeader();
        reader.ThrowIfFailedCheckpoint();
        var arch = reader.Read<HeaderArchRecord>();
        var tree = reader.Read<TreeRecord>();
        if (tree.TaskCount != 1)
            throw new ImageFormatException(RecordType.Tree, reader.CurrentRecordOffset, $"{tree.TaskCount} tasks: only single-process images are supported");
        var task = reader.Read<TaskRecord>();
        string cwd = reader.ReadString(), root = reader.ReadString(), exe = reader.ReadString();
        var credentials = reader.Read<CredentialsRecord>();
        uint[] groups = ReadGroups(reader, credentials);
        reader.Read<TaskObjectsRecord>();

        var files = new Dictionary<int, FilePlan>();
        var mm = reader.Read<MmRecord>();
        var vmas = ReadVmas(reader, mm, files);
        var fileTable = reader.Read<FileTableRecord>();
        var descriptors = new List<FileDescriptorRecord>();
        for (int i = 0; i < fileTable.DescriptorCount; i++)
        {
            ReadFileIfPresent(reader, files);
            var descriptor = reader.Read<FileDescriptorRecord>();
            RequireKnownFile(reader, files, descriptor.FileObjRef, RecordType.FileDescriptor);
            descriptors.Add(descriptor);
        }

        var handlers = reader.Read<SignalHandlersRecord>();
        var actions = new List<SignalActionRecord>();
        for (int i = 0; i < handlers.ActionCount; i++) actions.Add(reader.Read<SignalActionRecord>());
        var signal = reader.Read<SignalRecord>();
        var pending = new List<SignalPendingRecord>();
        for (int i = 0; i < signal.PendingCount; i++) pending.Add(reader.Read<SignalPendingRecord>());

        var threads = new List<ThreadPlan>();
        for (int i = 0; i < task.ThreadCount; i++) threads.Add(ReadThread(reader));
        reader.ThrowIfFailedCheckpoint();
        reader.ReadTail();

        return new RestorePlan
        {
            Header = header, HeaderArch = arch, Task = task, Cwd = cwd, Root = root, ExePath = exe,
            Credentials = credentials, Groups = groups, Mm = mm, Vmas = vmas, Files = files,
            Descriptors = descriptors, SignalActions = actions, Signal = signal, PendingSignals = pending,
            Threads = threads, ImageFile = handle,
        };
    }

    private static uint[] ReadGroups(ImageReader reader, CredentialsRecord credentials)
    {
        if (credentials.GroupCount <= 0) return [];
        var info = reader.Read<GroupInfoRecord>();
        if (info.GroupCount != credentials.GroupCount || info.ByteLength != (uint)info.GroupCount * 4)
            throw new ImageFormatException(RecordType.GroupInfo, reader.CurrentRecordOffset, $"{info.GroupCount} groups in {info.ByteLength} bytes, credentials say {credentials.GroupCount}");
        return MemoryMarshal.Cast<byte, uint>(reader.ReadTrailingBytes()).ToArray();
    }

    private static List<VmaPlan> ReadVmas(ImageReader reader, MmRecord mm, Dictionary<int, FilePlan> files)
    {
        var vmas = new List<VmaPlan>();
        ulong previousEnd = 0;
        for (int i = 0; i < mm.VmaCount; i++)
        {
            ReadFileIfPresent(reader, files);
            var vma = reader.Read<VmaRecord>();
            long offset = reader.CurrentRecordOffset;
            if (vma.VmEnd <= vma.VmStart || vma.VmStart < previousEnd || vma.VmStart % reader.PageSize != 0 || vma.VmEnd % reader.PageSize != 0)
                throw new ImageFormatException(RecordType.Vma, offset, $"bad or unordered range 0x{vma.VmStart:x}-0x{vma.VmEnd:x}");
            previousEnd = vma.VmEnd;
            FilePlan? file = vma.FileObjRef == 0 ? null : RequireKnownFile(reader, files, vma.FileObjRef, RecordType.Vma);
            vmas.Add(new VmaPlan(vma, file, ReadChunks(reader, vma)));
        }
        return vmas;
    }

    private static List<PageChunk> ReadChunks(ImageReader reader, VmaRecord vma)
    {
        var chunks = new List<PageChunk>();
        ulong pages = 0;
        while (true)
        {
            var array = reader.Read<PageArrayRecord>();
            if (array.PageCount == 0) return chunks;
            pages += array.PageCount;
            if (pages > vma.PagesPopulated)
                throw new ImageFormatException(RecordType.PageArray, reader.CurrentRecordOffset,
                    $"VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x} has more pages in its chunks than the {vma.PagesPopulated} it counted");
            var addresses = new ulong[array.PageCount];
            reader.ReadPageAddresses(addresses);
            foreach (ulong address in addresses)
            {
                if (address < vma.VmStart || address >= vma.VmEnd || address % reader.PageSize != 0)
                    throw new ImageFormatException(RecordType.PageArray, reader.CurrentRecordOffset, $"page 0x{address:x} is outside its VMA 0x{vma.VmStart:x}-0x{vma.VmEnd:x}");
            }
            chunks.Add(new PageChunk(addresses, reader.Position));
            reader.SkipPageContents();
        }
    }

    private static void ReadFileIfPresent(ImageReader reader, Dictionary<int, FilePlan> files)
    {
        if (reader.PeekType() != RecordType.File) return;
        var file = reader.Read<FileRecord>();
        long offset = reader.CurrentRecordOffset;
        string path = reader.ReadTrailingString();
        if (file.ObjRef <= 0 || !files.TryAdd(file.ObjRef, new FilePlan(file, path)))
            throw new ImageFormatException(RecordType.File, offset, $"objref {file.ObjRef} is invalid or already defined");
    }

    private static FilePlan RequireKnownFile(ImageReader reader, Dictionary<int, FilePlan> files, int objRef, RecordType user) =>
        files.TryGetValue(objRef, out var file) ? file
            : throw new ImageFormatException(user, reader.CurrentRecordOffset, $"refers to file objref {objRef}, which no earlier FILE record defines");

    private static ThreadPlan ReadThread(ImageReader reader)
    {
        var thread = reader.Read<ThreadRecord>();
        RestartBlockRecord? restartBlock = reader.PeekType() == RecordType.RestartBlock ? reader.Read<RestartBlockRecord>() : null;
        var stack = reader.Read<SignalStackRecord>();
        var rseq = reader.Read<RseqRecord>();
        var cpu = reader.Read<CpuRecord>();
        var xstateRecord = reader.Read<CpuXstateRecord>();
        byte[] xstate = reader.ReadTrailingBytes();
        return new ThreadPlan(thread, restartBlock, stack, rseq, cpu, xstateRecord, xstate);
    }

}
