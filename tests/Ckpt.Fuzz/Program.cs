using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Microsoft.Win32.SafeHandles;
using SharpFuzz;

// The AFL++ target (docs/fuzzing.md): one input = one image file, taken through what `ckpt restore`
// does before it creates a process: every record read and checked by the image model, then the
// restore plan validated against this machine (paths are only lstat'ed). A hostile image must end
// in one of the refusals below; any other exception, a hang or a huge allocation is a finding.
//
//   Ckpt.Fuzz                 run under afl-fuzz (inputs from AFL's shared memory / stdin)
//   Ckpt.Fuzz FILE|DIR ...    replay inputs once each, print the outcome, exit 1 on a finding
if (args.Length == 0)
{
    Fuzzer.Run(stream =>
    {
        try { FuzzTarget.Run(stream); }
        catch (Exception e) when (FuzzTarget.IsRefusal(e)) { /* the expected end of a hostile input */ }
    });
    return 0;
}
int findings = 0;
foreach (string file in args.SelectMany(a => Directory.Exists(a) ? Directory.GetFiles(a) : [a]).Order())
{
    try
    {
        using var stream = File.OpenRead(file);
        Console.WriteLine($"{file}: accepted ({FuzzTarget.Run(stream)})");
    }
    catch (Exception e) when (FuzzTarget.IsRefusal(e))
    {
        Console.WriteLine($"{file}: refused: {e.Message}");
    }
    catch (Exception e)
    {
        findings++;
        Console.WriteLine($"{file}: FINDING {e}");
    }
}
return findings == 0 ? 0 : 1;

internal static class FuzzTarget
{
    public static string Run(Stream input)
    {
        // ImageReader seeks over page contents, as the restore does on its image file.
        var buffer = new MemoryStream();
        input.CopyTo(buffer);
        buffer.Position = 0;
        using var reader = new ImageReader(buffer, leaveOpen: true, verifyChecksum: false);
        ImageModel image = RestorePlanReader.ReadModel(reader);
        using var plan = new RestorePlan
        {
            Image = image, ImageFile = new SafeFileHandle(IntPtr.Zero, ownsHandle: false),
            ChecksumMatches = Task.FromResult(true),
        };
        RestoreValidation.ValidateImage(plan, force: true);
        return $"pid {plan.Pid}, {plan.Threads.Count} threads, {plan.Vmas.Count} mappings";
    }

    // What a restore reports for a bad image: anything else escaping is a bug.
    public static bool IsRefusal(Exception e) =>
        e is ImageFormatException or FailedCheckpointException or RestoreRefusedException;
}
