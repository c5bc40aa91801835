using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// How a socket's reader reaches the image's file objects: define the one whose FILE record comes next (only a kind
/// that may travel in flight on its own), and find one already defined.
/// </summary>
internal sealed record FileObjects(Func<FileImage?> DefineInFlightIfFirstUse, Func<int, RecordType, FileImage> Defined);

/// <summary>
/// The image model's reading of the descriptors in flight of a unix socket's queued message: the SOCKET_RIGHTS after
/// its SOCKET_QUEUE record and that many IN_FLIGHT_FILE records, each naming a file object defined before it (by a
/// descriptor table, an earlier message, or the FILE record right before it). A file object only in flight is one of
/// the kinds the restore can make on its own (<see cref="CanTravelAlone"/>), never a socket (which could nest queues).
/// </summary>
internal static class InFlightFilesReader
{
    /// <summary>The kinds a checkpoint saves in flight when no descriptor table holds them.</summary>
    public static bool CanTravelAlone(FileKind kind) =>
        kind is FileKind.Regular or FileKind.Directory or FileKind.CharacterDevice or FileKind.BlockDevice or FileKind.Pipe or FileKind.Eventfd;

    public static IReadOnlyList<FileImage>? ReadIfPresent(ImageReader reader, SocketRecord socket, uint message, FileObjects files)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() != RecordType.SocketRights) return null;
        var rights = reader.Read<SocketRightsRecord>();
        string what = $"queued message {message + 1} of socket objref {socket.ObjRef}";
        if (rights.ObjRef != socket.ObjRef)
            throw SocketImageReader.Error(reader, RecordType.SocketRights, $"has objref {rights.ObjRef}, after {what}");
        if (socket.Family != SocketFamily.Unix)
            throw SocketImageReader.Error(reader, RecordType.SocketRights, $"{what}: descriptors in flight on a {socket.Family} socket (only unix sockets carry them)");
        if (rights.DescriptorCount is 0 or > SocketRightsRecord.MaxDescriptors)
            throw SocketImageReader.Error(reader, RecordType.SocketRights, $"{what} carries {rights.DescriptorCount} descriptors (1 to {SocketRightsRecord.MaxDescriptors})");
        var carried = new List<FileImage>((int)rights.DescriptorCount);
        for (uint i = 0; i < rights.DescriptorCount; i++)
        {
            FileImage? defined = files.DefineInFlightIfFirstUse();
            reader.ThrowIfFailedCheckpoint();
            if (reader.PeekType() is { } next && next != RecordType.InFlightFile)
                throw SocketImageReader.Error(reader, next, $"found where descriptor {i + 1} of {rights.DescriptorCount} in flight in {what} belongs");
            var inFlight = reader.Read<InFlightFileRecord>();
            if (inFlight.SocketObjRef != socket.ObjRef)
                throw SocketImageReader.Error(reader, RecordType.InFlightFile, $"has socket objref {inFlight.SocketObjRef}, in {what}");
            if (defined is not null && defined.Record.ObjRef != inFlight.FileObjRef)
                throw SocketImageReader.Error(reader, RecordType.InFlightFile, $"names file objref {inFlight.FileObjRef}, but the FILE record before it defines {defined.Record.ObjRef}");
            carried.Add(files.Defined(inFlight.FileObjRef, RecordType.InFlightFile));
        }
        return carried;
    }
}
