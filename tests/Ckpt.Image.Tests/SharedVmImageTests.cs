using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Address spaces and signal handlers shared by processes (issue 10): the second process's TASK_OBJECTS names
/// the first's MM (and SIGNAL_HANDLERS) objref and its section has OBJREFs where the objects were. Round trip
/// (one instance of each shared object), and the sharing no clone makes refused at the TASK_OBJECTS record
/// and its offset: handlers without memory (CLONE_SIGHAND requires CLONE_VM), the signal state (threads only).
/// </summary>
public class SharedVmImageTests
{
    private static V3Image Sharing(bool memory, bool handlers, bool signal = false) =>
        new() { Threads = 2, SecondProcess = true, ChildShares = (memory, handlers, signal) };

    // The leader's two threads write one TASK_OBJECTS each, then the child's.
    private const int ChildTaskObjects = 2;

    private static ImageFormatException Expect(byte[] image)
    {
        long offset = V3Image.OffsetOf(image, RecordType.TaskObjects, ChildTaskObjects);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == RecordType.TaskObjects && error.Offset == offset,
            $"expected the error at TaskObjects offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        return error;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SharedMemoryAndHandlersRoundTripAsOneInstanceEach(bool handlers)
    {
        ImageModel model = V3Image.Read(Sharing(memory: true, handlers).Build());
        ProcessImage leader = model.Processes[0], child = model.Processes[1];
        Assert.Same(leader.Memory, child.Memory);
        Assert.Equal(V3Image.MmRef, child.Memory.Mm.ObjRef);
        Assert.Equal(handlers, ReferenceEquals(leader.SignalHandlers, child.SignalHandlers));
        Assert.NotSame(leader.Signal, child.Signal);
        // Without OBJREFs each process has its own.
        ImageModel own = V3Image.Read(new V3Image { Threads = 2, SecondProcess = true }.Build());
        Assert.NotSame(own.Processes[0].Memory, own.Processes[1].Memory);
    }

    [Fact]
    public void HandlersSharedWithoutMemoryAreRefused()
    {
        var error = Expect(Sharing(memory: false, handlers: true).Build());
        Assert.Contains($"process {V3Image.ChildPid} shares the signal handlers (objref {V3Image.HandlersRef}) of process {V3Image.LeaderPid} but not its memory", error.Message);
    }

    [Fact]
    public void ASignalStateSharedByTwoProcessesIsRefused()
    {
        var error = Expect(Sharing(memory: true, handlers: true, signal: true).Build());
        Assert.Contains($"process {V3Image.ChildPid} uses the signal state of process {V3Image.LeaderPid}: only threads of one process share it", error.Message);
    }
}
