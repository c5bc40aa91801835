namespace Ckpt.Image.Records;

/// <summary>TcpConnectionRecord.TcpState: the kernel's TCP state (include/net/tcp_states.h). Only ESTABLISHED is restored.</summary>
public enum TcpState : uint
{
    Established = 1,    // TCP_ESTABLISHED
}

/// <summary>TcpConnectionRecord.Options: the options the two ends agreed on in the handshake (tcp_info's tcpi_options bits).</summary>
[Flags]
public enum TcpOptions : uint
{
    None = 0,
    Timestamps = 1,     // TCPI_OPT_TIMESTAMPS: RFC 7323 timestamps (Timestamp holds this end's clock)
    Sack = 2,           // TCPI_OPT_SACK: selective acknowledgements permitted
    WindowScale = 4,    // TCPI_OPT_WSCALE: SendWindowScale/ReceiveWindowScale apply
    All = 7,
}

/// <summary>TcpQueueDataRecord.Queue: which queue of the connection the bytes belong to (TCP_REPAIR_QUEUE's values).</summary>
public enum TcpQueue : uint
{
    Receive = 1,        // TCP_RECV_QUEUE: received and acknowledged, not yet read by the program
    Send = 2,           // TCP_SEND_QUEUE: written by the program, not yet acknowledged by the peer (sent or not)
}

/// <summary>
/// CkptPS: an established TCP connection, read in TCP_REPAIR mode (CAP_NET_ADMIN), right after the SOCKET
/// record of a socket whose State is Established (which holds the local and peer addresses and the options),
/// and followed by its queues as TCP_QUEUE_DATA records: the receive queue first, then the send queue.
/// A restore makes a socket in repair mode, binds it to the local address, sets both sequence numbers,
/// connects it to the peer (no packet is sent in repair mode), sets the negotiated options, the timestamp
/// clock and the queues, then the window, and leaves repair mode once every process is ready.
/// Sequence numbers are those of the first byte of each queue, so a queue's bytes go back where they were.
/// </summary>
[ImageRecord(RecordType.TcpConnection)]
public partial struct TcpConnectionRecord
{
    public const uint MaxQueueBytes = 64 * 1024 * 1024;    // per queue: the model holds it in memory
    public const int MaxChunk = 64 * 1024;                 // bytes per TCP_QUEUE_DATA record

    public int ObjRef;                  // the socket's (its FILE's) objref
    public TcpState State;              // TCP_INFO tcpi_state
    public uint SendSequence;           // TCP_QUEUE_SEQ of the send queue (write_seq) minus SendQueueBytes: snd_una
    public uint ReceiveSequence;        // TCP_QUEUE_SEQ of the receive queue (rcv_nxt) minus ReceiveQueueBytes: the first unread byte
    public uint SendQueueBytes;         // SIOCOUTQ: written, not acknowledged (sent or not)
    public uint UnsentBytes;            // SIOCOUTQNSD: the tail of the send queue never sent (restored by a normal send after repair)
    public uint ReceiveQueueBytes;      // SIOCINQ: received, not read
    public uint MaxSegmentSize;         // TCP_MAXSEG in repair mode: mss_clamp, the peer's announced MSS (TCPOPT_MSS)
    public TcpOptions Options;          // TCP_INFO tcpi_options (timestamps, SACK, window scaling)
    public byte SendWindowScale;        // tcpi_snd_wscale (0..14; 0 without WindowScale)
    public byte ReceiveWindowScale;     // tcpi_rcv_wscale (0..14)
    public ushort Reserved;             // 0
    public uint Timestamp;              // TCP_TIMESTAMP: this end's timestamp clock (0 without Timestamps)
    public uint SendWindowUpdateSequence;   // TCP_REPAIR_WINDOW snd_wl1: sequence of the segment that last updated the send window
    public uint SendWindow;             // snd_wnd: the peer's receive window, in bytes
    public uint MaxWindow;              // max_window: the largest window the peer offered
    public uint ReceiveWindow;          // rcv_wnd: the window this end offers
    public uint ReceiveWindowUpdate;    // rcv_wup: rcv_nxt when the window was last announced
    public uint Reserved2;              // 0
}

/// <summary>
/// CkptPS: bytes of one queue of the established TCP connection before it (TCP_CONNECTION), in order,
/// 1 to MaxChunk bytes each; the receive queue's chunks come before the send queue's, and each queue's
/// chunks add up to its byte count in the TCP_CONNECTION record.
/// </summary>
[ImageRecord(RecordType.TcpQueueData)]
public partial struct TcpQueueDataRecord
{
    public int ObjRef;                  // the socket's objref
    public TcpQueue Queue;
    [TrailingBytes] public uint Length;
    public uint Reserved;               // 0
}
