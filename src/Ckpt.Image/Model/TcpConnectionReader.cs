using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The image model's reading of an established TCP connection: the TCP_CONNECTION record that must follow
/// its SOCKET record, then the TCP_QUEUE_DATA chunks of the receive queue and of the send queue, in that
/// order, adding up to the counts the record gives. The restore feeds these values to TCP_REPAIR, which
/// checks the window against the sequence numbers itself; here every size, flag and count is bounded.
/// </summary>
internal static class TcpConnectionReader
{
    public static TcpConnectionImage Read(ImageReader reader, int objRef)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != RecordType.TcpConnection)
            throw Error(reader, other, $"found where the TCP_CONNECTION record of established socket objref {objRef} belongs");
        var tcp = reader.Read<TcpConnectionRecord>();
        long offset = reader.CurrentRecordOffset;
        string problem = Problem(tcp, objRef);
        if (problem.Length != 0) throw Error(reader, RecordType.TcpConnection, $"socket objref {objRef}: {problem}");
        byte[] receive = ReadQueue(reader, tcp, TcpQueue.Receive, tcp.ReceiveQueueBytes);
        byte[] send = ReadQueue(reader, tcp, TcpQueue.Send, tcp.SendQueueBytes);
        if (reader.PeekType() == RecordType.TcpQueueData)
            throw Error(reader, RecordType.TcpQueueData, $"more queue data than the TCP_CONNECTION record of socket objref {objRef} announced");
        return new TcpConnectionImage(tcp, receive, send, offset);
    }

    private static string Problem(TcpConnectionRecord tcp, int objRef)
    {
        if (tcp.ObjRef != objRef) return $"has objref {tcp.ObjRef}, its SOCKET record {objRef}";
        if (tcp.State != TcpState.Established) return $"TCP state {(uint)tcp.State} is not ESTABLISHED (1), the only one restored";
        if (tcp.SendQueueBytes > TcpConnectionRecord.MaxQueueBytes || tcp.ReceiveQueueBytes > TcpConnectionRecord.MaxQueueBytes)
            return $"queues {tcp.ReceiveQueueBytes} bytes to receive and {tcp.SendQueueBytes} to send (at most {TcpConnectionRecord.MaxQueueBytes} each)";
        if (tcp.UnsentBytes > tcp.SendQueueBytes) return $"says {tcp.UnsentBytes} bytes were never sent of a send queue of {tcp.SendQueueBytes}";
        if (tcp.MaxSegmentSize is 0 or > 65535) return $"maximum segment size {tcp.MaxSegmentSize} is not 1 to 65535";
        if ((tcp.Options & ~TcpOptions.All) != 0) return $"options 0x{(uint)tcp.Options:x} have unknown bits";
        if (tcp.SendWindowScale > 14 || tcp.ReceiveWindowScale > 14 || (!tcp.Options.HasFlag(TcpOptions.WindowScale) && (tcp.SendWindowScale | tcp.ReceiveWindowScale) != 0))
            return $"window scales {tcp.SendWindowScale}/{tcp.ReceiveWindowScale} are above 14 or set without the window scale option";
        if (!tcp.Options.HasFlag(TcpOptions.Timestamps) && tcp.Timestamp != 0) return "has a timestamp clock without the timestamp option";
        if (tcp.Reserved != 0 || tcp.Reserved2 != 0) return "has reserved fields that are not 0";
        return "";
    }

    private static byte[] ReadQueue(ImageReader reader, TcpConnectionRecord tcp, TcpQueue queue, uint length)
    {
        var bytes = new byte[length];
        int filled = 0;
        while (filled < bytes.Length)
        {
            reader.ThrowIfFailedCheckpoint();
            if (reader.PeekType() is { } next && next != RecordType.TcpQueueData)
                throw Error(reader, next, $"found where {queue} queue byte {filled} of {length} of socket objref {tcp.ObjRef} belongs");
            var chunk = reader.Read<TcpQueueDataRecord>();
            if (chunk.ObjRef != tcp.ObjRef || chunk.Queue != queue || chunk.Reserved != 0)
                throw Error(reader, RecordType.TcpQueueData, $"has objref {chunk.ObjRef} and queue {(uint)chunk.Queue} where {queue} queue data of socket objref {tcp.ObjRef} belongs");
            if (chunk.Length is 0 or > TcpConnectionRecord.MaxChunk || chunk.Length > bytes.Length - filled)
                throw Error(reader, RecordType.TcpQueueData, $"holds {chunk.Length} bytes: 1 to {TcpConnectionRecord.MaxChunk}, and no more than the {bytes.Length - filled} left of the {queue} queue of socket objref {tcp.ObjRef}");
            reader.ReadTrailing(bytes.AsSpan(filled, (int)chunk.Length));
            filled += (int)chunk.Length;
        }
        return bytes;
    }

    private static ImageFormatException Error(ImageReader reader, RecordType? record, string problem) => new(record, reader.CurrentRecordOffset, problem);
}
