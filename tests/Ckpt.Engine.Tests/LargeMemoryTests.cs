using System.Globalization;
using Ckpt.Image;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A process with 512 MiB of dirty memory (tests/workloads/ckpt_dirty.c): the engine's own memory
/// must not grow with the target's (issue 3: bounded whatever the target's size), the image must
/// hold exactly the pages with data (not the untouched ones, not those the program zeroed), and
/// every page must come back intact through the chunks and blocks of a real image and the
/// restore's page paths.
/// </summary>
public class LargeMemoryTests
{
    private const int TargetMebibytes = 512;
    // Issue 6's bound for a 1 GiB target, far below this target's size (an engine holding the image
    // would need all of it); the NativeAOT engine stays near 25 MiB, a framework-dependent one near 60.
    private const long EngineBoundKib = 100 * 1024;
    private const int PageSize = 4096, UntouchedEvery = 97, ZeroedEvery = 89; // as in ckpt_dirty.c

    [Fact]
    public void Checkpointing_512_MiB_keeps_the_engine_small_and_the_restore_brings_back_every_page()
    {
        using var target = Start("ckpt_dirty", TargetMebibytes.ToString());
        string image = TempPath("large.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill", "--progress-fd", "2"]);
        Assert.True(code == 0, stderr);
        long checkpointRss = PeakResidentKib(stderr);
        Assert.True(new FileInfo(image).Length > TargetMebibytes * 0.98 * (1 << 20), "the image holds the dirty pages");
        Assert.True(checkpointRss < EngineBoundKib, $"checkpoint engine peak RSS {checkpointRss} KiB for a {TargetMebibytes} MiB target");
        Assert.Equal(ExpectedDataPages(RegionOf(target)), SavedPagesIn(image, RegionOf(target)));
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);

        var (restoreCode, stdout, restoreError) = RunCli(["restore", "--input", image, "--progress-fd", "2"]);
        try
        {
            Assert.True(restoreCode == 0, restoreError);
            long restoreRss = PeakResidentKib(restoreError);
            Assert.Equal(target.Pid, int.Parse(stdout.Trim()));
            Assert.True(restoreRss < EngineBoundKib, $"restore engine peak RSS {restoreRss} KiB for a {TargetMebibytes} MiB image");
            WaitUntilBackInPause(target.Pid);
            target.RequirePass();
        }
        finally
        {
            if (IsAlive(target.Pid)) RestoreTestProcesses.Signal(target.Pid, 9);
            File.Delete(image);
        }
    }

    // The engine's VmHWM from its result line (wait4's ru_maxrss would count our own memory: the
    // engine is spawned with vfork semantics and inherits the spawner's high-water mark).
    private static long PeakResidentKib(string progressLines)
    {
        string result = progressLines.Split('\n').Last(line => line.Contains("\"event\":\"result\"", StringComparison.Ordinal));
        return System.Text.Json.JsonDocument.Parse(result).RootElement.GetProperty("peak_rss_kib").GetInt64();
    }

    private static ulong RegionOf(Target target)
    {
        string line = File.ReadLines(target.Log).First(l => l.StartsWith("REGION ", StringComparison.Ordinal));
        return ulong.Parse(line["REGION 0x".Length..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    private static List<ulong> ExpectedDataPages(ulong region) =>
        [.. Enumerable.Range(0, TargetMebibytes * 256)
            .Where(page => page % UntouchedEvery != 0 && page % ZeroedEvery != 0)
            .Select(page => region + (ulong)page * PageSize)];

    // The page addresses of the image's chunks inside the workload's region; contents skipped.
    private static List<ulong> SavedPagesIn(string image, ulong region)
    {
        ulong end = region + ((ulong)TargetMebibytes << 20);
        var saved = new List<ulong>();
        var addresses = new ulong[PageArrayRecord.MaxPagesPerChunk];
        using var reader = new ImageReader(File.OpenRead(image), verifyChecksum: false);
        reader.ReadHeader();
        while (reader.PeekType() is { } type && type != RecordType.Tail)
        {
            if (type != RecordType.PageArray)
            {
                reader.SkipRecord();
                continue;
            }
            if (reader.Read<PageArrayRecord>().PageCount == 0) continue;
            int count = reader.ReadPageAddresses(addresses);
            saved.AddRange(addresses.Take(count).Where(a => a >= region && a < end));
        }
        return saved;
    }
}
