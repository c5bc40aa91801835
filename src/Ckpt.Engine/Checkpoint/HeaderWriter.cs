using System.Text;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Checkpoint;

/// <summary>HEADER (what wrote the image, where, kernel constants) and HEADER_ARCH (xsave features and size).</summary>
public static class HeaderWriter
{
    // The kernel copies its xstate_fx_sw_bytes into the FXSAVE area's software-reserved bytes:
    // magic1 at 464, extended_size at 468, xfeatures (the user XCR0) at 472.
    private const int SwReservedXfeaturesOffset = 472;

    public static unsafe void Write(ImageWriter writer, byte[] xstate)
    {
        var (release, version, machine) = Native.Uname();
        var header = new HeaderRecord
        {
            Magic = HeaderRecord.ExpectedMagic,
            FormatVersion = HeaderRecord.CurrentFormatVersion,
            LinuxCrNumbering = HeaderRecord.LinuxCrVersion,
            Arch = Architecture.X86_64,
            CreatedUnixNanoseconds = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100,
            ImageId = NewImageId(),
            ParentImageId = 0, // every image is a full image for now
            PageSize = (uint)Environment.SystemPageSize,
            TaskCommLength = 16,
            SignalCount = 64,
            RlimitCount = 16,
            AuxvWords = MmRecord.AuxvCapacity,
            UserRegsSize = 216,
        };
        Copy(release, header.KernelRelease);
        Copy(version, header.KernelVersion);
        Copy(machine, header.Machine);
        writer.Write(header);
        writer.Write(new HeaderArchRecord
        {
            XFeatures = BitConverter.ToUInt64(xstate, SwReservedXfeaturesOffset),
            XstateSize = (uint)xstate.Length,
        });
    }

    private static ulong NewImageId()
    {
        ulong id;
        do id = BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        while (id == 0);
        return id;
    }

    private static unsafe void Copy(string value, byte* destination)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        for (int i = 0; i < Math.Min(bytes.Length, 64); i++) destination[i] = bytes[i];
    }
}
