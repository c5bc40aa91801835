using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// TERMINAL and CONTROLLING_TERMINAL records: a pseudo-terminal pair (master fd 3 with the TERMINAL
/// record, slave fd 4 with an OBJREF to it) and an outside terminal (fd 5), the leader's controlling
/// terminal outside the image, come back in the model as one pair object; hostile values and broken
/// references are refused naming the record and its offset.
/// </summary>
public class TerminalImageTests
{
    private const int Master = 30, Slave = 31, Outside = 32, Pair = 40;

    private static unsafe TerminalRecord Terminal()
    {
        var t = new TerminalRecord
        {
            TerminalObjRef = Pair, Index = 7, Flags = TerminalFlags.PacketMode, InputFlags = 0x500, OutputFlags = 0x5, ControlFlags = 0xbf,
            LocalFlags = 0x8a3b, InputSpeed = 38400, OutputSpeed = 38400, Rows = 24, Columns = 80, SlaveUid = 1000, SlaveGid = 5, SlaveMode = 0x190,
        };
        t.ControlCharacters[0] = 3; // VINTR ^C
        return t;
    }

    private static void WriteFile(ImageWriter writer, int objRef, FileKind kind, string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        writer.Write(new FileRecord { ObjRef = objRef, Kind = kind, OpenFlags = 2, Mode = 0x2190, RawDevice = 0x8807, PathLength = (uint)bytes.Length }, bytes);
    }

    private static void WriteControlling(ImageWriter writer, ControllingTerminalRecord record, string name = "/dev/pts/0")
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        writer.Write(record with { NameLength = (uint)bytes.Length }, bytes);
    }

    private static ControllingTerminalRecord OutsideTerminal => new() { Session = V3Image.Sid, ForegroundGroup = V3Image.LeaderPid, Device = 0x8800 };

    /// <summary>fd 3 the master (TERMINAL), fd 4 the slave (OBJREF), fd 5 the user's terminal; the leader's terminal outside.</summary>
    private static V3Image Builder(Func<TerminalRecord, TerminalRecord>? edit = null, Action<ImageWriter>? slaveReference = null,
        string masterPath = "/dev/ptmx", FileKind slaveKind = FileKind.PtySlave, bool master = true, ControllingTerminalRecord? controlling = null,
        Action<ImageWriter>? afterTerminal = null) => new()
    {
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, Master, master ? FileKind.PtyMaster : FileKind.PtySlave, master ? masterPath : "/dev/pts/7");
            writer.Write((edit ?? (r => r))(Terminal()));
            afterTerminal?.Invoke(writer);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = Master });
            WriteFile(writer, Slave, slaveKind, "/dev/pts/7");
            if (slaveReference is not null) slaveReference(writer);
            else writer.Write(new ObjrefRecord { ObjectType = ObjectType.Terminal, ObjRef = Pair });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = Slave });
            WriteFile(writer, Outside, FileKind.OutsideTerminal, "/dev/pts/0");
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = Outside });
        },
        ControllingTerminal = writer => WriteControlling(writer, controlling ?? OutsideTerminal),
    };

    [Fact]
    public void APairAndTheUsersTerminalComeBackWithTheirState()
    {
        ProcessImage process = V3Image.Read(Builder().Build()).Processes[0];
        FileTableImage files = process.FileTable;
        TerminalImage pair = Assert.IsType<TerminalImage>(files.Files[Master].Terminal);
        Assert.Same(pair, files.Files[Slave].Terminal);
        Assert.Null(files.Files[Outside].Terminal);
        Assert.Equal((7, TerminalFlags.PacketMode, (ushort)24, (ushort)80, 0x8a3bu, (byte)3), (pair.Record.Index, pair.Record.Flags, pair.Record.Rows, pair.Record.Columns, pair.Record.LocalFlags, GetVintr(pair.Record)));
        Assert.Equal("pair /dev/pts/7 (objref 40), 24x80, packet mode, canonical, echo", FileStateText.Describe(files.Files[Master]));
        ControllingTerminalImage terminal = Assert.IsType<ControllingTerminalImage>(process.Signal.ControllingTerminal);
        Assert.True(terminal.Outside);
        Assert.Equal(("/dev/pts/0", V3Image.LeaderPid, 0x8800ul), (terminal.Name, terminal.Record.ForegroundGroup, terminal.Record.Device));
    }

    private static unsafe byte GetVintr(TerminalRecord t) => t.ControlCharacters[0];

    private static Action<ImageWriter> Output(byte[] bytes, int objRef = Pair, uint? length = null) =>
        writer => writer.Write(new TerminalOutputRecord { TerminalObjRef = objRef, DataLength = length ?? (uint)bytes.Length }, bytes);

    [Fact]
    public void UnreadOutputComesBackWithItsPair()
    {
        byte[] output = [.. "ls\r\n"u8, 0, 0xff, (byte)'\n'];
        FileTableImage files = V3Image.Read(Builder(afterTerminal: Output(output)).Build()).Processes[0].FileTable;
        TerminalImage pair = Assert.IsType<TerminalImage>(files.Files[Master].Terminal);
        Assert.Same(pair, files.Files[Slave].Terminal);
        Assert.Equal(output, pair.UnreadOutput);
        Assert.EndsWith(", 7 bytes of unread output", FileStateText.Describe(files.Files[Slave]));
        Assert.Empty(V3Image.Read(Builder().Build()).Processes[0].FileTable.Files[Master].Terminal!.UnreadOutput);
    }

    [Fact]
    public void HostileUnreadOutputIsRefusedNamingTheRecordAndOffset()
    {
        byte[] other = Builder(afterTerminal: Output("x"u8.ToArray(), objRef: Slave)).Build();
        Assert.Contains($"is for terminal objref {Slave}, after the TERMINAL record of {Pair}", Expect(other, RecordType.TerminalOutput, Offsets(other, RecordType.TerminalOutput)[0]).Message);
        byte[] empty = Builder(afterTerminal: Output([])).Build();
        Assert.Contains("has 0 bytes of unread output: from 1 to 16384", Expect(empty, RecordType.TerminalOutput, Offsets(empty, RecordType.TerminalOutput)[0]).Message);
        byte[] large = Builder(afterTerminal: Output(new byte[TerminalOutputRecord.MaximumLength + 1])).Build();
        Assert.Contains("has 16385 bytes of unread output", Expect(large, RecordType.TerminalOutput, Offsets(large, RecordType.TerminalOutput)[0]).Message);
        // After an OBJREF (a later end) it is no state of that end: the descriptor record is expected there.
        byte[] late = Builder(slaveReference: w => { w.Write(new ObjrefRecord { ObjectType = ObjectType.Terminal, ObjRef = Pair }); Output("x"u8.ToArray())(w); }).Build();
        Assert.Throws<ImageFormatException>(() => V3Image.Read(late));
    }

    public static TheoryData<string, string> HostilePairs() => new()
    {
        { "flags", "flags 0x4 hold unknown bits" },
        { "line", "line discipline 2 is not N_TTY" },
        { "index", "index -1 is negative" },
        { "mode", "slave mode 01000 is more than permission bits" },
        { "speed", "speeds 4294967295/38400" },
        { "objref", "the objref is not positive" },
    };

    [Theory]
    [MemberData(nameof(HostilePairs))]
    public void HostileTerminalRecordsAreRefusedNamingTheRecordAndOffset(string field, string named)
    {
        TerminalRecord Edit(TerminalRecord t)
        {
            switch (field)
            {
                case "flags": t.Flags = (TerminalFlags)4; break;
                case "line": t.LineDiscipline = 2; break;
                case "index": t.Index = -1; break;
                case "mode": t.SlaveMode = 0x200; break;
                case "speed": t.InputSpeed = uint.MaxValue; break;
                case "objref": t.TerminalObjRef = 0; break;
            }
            return t;
        }
        byte[] image = Builder(Edit).Build();
        Assert.Contains(named, Expect(image, RecordType.Terminal, Offsets(image, RecordType.Terminal)[0]).Message);
    }

    [Fact]
    public void ASlaveEndThatNamesNoPairIsRefused()
    {
        byte[] pipe = Builder(slaveReference: w => w.Write(new ObjrefRecord { ObjectType = ObjectType.Pipe, ObjRef = Pair })).Build();
        Assert.Contains("which is no terminal pair defined earlier", Expect(pipe, RecordType.Objref, Offsets(pipe, RecordType.Objref)[0]).Message);
        byte[] file = Builder(slaveReference: w => w.Write(new ObjrefRecord { ObjectType = ObjectType.Terminal, ObjRef = Master })).Build();
        Assert.Contains($"refers to Terminal {Master}", Expect(file, RecordType.Objref, Offsets(file, RecordType.Objref)[0]).Message);
        byte[] missing = Builder(slaveReference: _ => { }).Build();
        Assert.Contains("TERMINAL record of PtySlave file objref 31", Expect(missing, RecordType.FileDescriptor, Offsets(missing, RecordType.FileDescriptor)[1]).Message);
    }

    [Fact]
    public void APairWithoutAMasterOrWithAWrongPathIsRefused()
    {
        byte[] slavesOnly = Builder(master: false).Build();
        Assert.Contains("has slave ends but no master", Expect(slavesOnly, RecordType.Terminal, Offsets(slavesOnly, RecordType.Terminal)[0]).Message);
        byte[] path = Builder(masterPath: "/tmp/ptmx").Build();
        Assert.Contains("'/tmp/ptmx', which is not a /dev/ptmx path", Expect(path, RecordType.File, Offsets(path, RecordType.File)[2]).Message);
    }

    [Fact]
    public void AControllingTerminalTheImageCannotRecreateIsRefused()
    {
        // The pair as terminal of a session whose leader (4990) is not in the image.
        byte[] leaderless = Builder(controlling: OutsideTerminal with { TerminalObjRef = Pair }).Build();
        Assert.Contains("the leader of session 4990 is not in the image", Expect(leaderless, RecordType.ControllingTerminal, Offsets(leaderless, RecordType.ControllingTerminal)[0]).Message);
        byte[] nothing = Builder(controlling: OutsideTerminal with { TerminalObjRef = Slave }).Build();
        Assert.Contains($"names terminal objref {Slave}, which is no terminal pair", Expect(nothing, RecordType.ControllingTerminal, Offsets(nothing, RecordType.ControllingTerminal)[0]).Message);
        byte[] session = Builder(controlling: OutsideTerminal with { Session = 77 }).Build();
        Assert.Contains("recorded for session 77, the process is in session 4990", Expect(session, RecordType.ControllingTerminal, Offsets(session, RecordType.ControllingTerminal)[0]).Message);
        byte[] device = Builder(controlling: OutsideTerminal with { Device = 0 }).Build();
        Assert.Contains("is not a controlling terminal", Expect(device, RecordType.ControllingTerminal, Offsets(device, RecordType.ControllingTerminal)[0]).Message);
    }

    private static int[] Offsets(byte[] image, RecordType type) => V3Image.Records(image).Where(r => r.Type == type).Select(r => r.Offset).ToArray();

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains($"record {ImageFormatException.RecordName(record)} at offset {offset}", error.Message);
        return error;
    }
}
