using Xunit;

namespace Ckpt.Generators.Tests;

public class DiagnosticTests
{
    [Fact]
    public void NonPartialRecordIsReported()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public struct LonelyRecord { public int A; } }
            """);
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("CKPT001", diagnostic.Id);
        Assert.Contains("partial struct LonelyRecord", diagnostic.GetMessage());
    }

    [Fact]
    public void UnsupportedFieldTypeIsReported()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct NamedRecord { public string Name; public double Ratio; } }
            """);
        Assert.Equal(["CKPT002", "CKPT002"], diagnostics.Select(d => d.Id));
        Assert.Contains("'Name'", diagnostics[0].GetMessage());
        Assert.Contains("integer", diagnostics[0].GetMessage());
        Assert.NotEqual(Microsoft.CodeAnalysis.Location.None, diagnostics[0].Location);
    }

    [Fact]
    public void DuplicateTypeNumberIsReported()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records
            {
                [ImageRecord(RecordType.Sample)] public partial struct FirstRecord { public int A; }
                [ImageRecord(RecordType.Sample)] public partial struct SecondRecord { public int B; }
            }
            """);
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("CKPT003", diagnostic.Id);
        Assert.Contains("FirstRecord", diagnostic.GetMessage());
        Assert.Contains("SecondRecord", diagnostic.GetMessage());
        Assert.Contains("500", diagnostic.GetMessage());
    }

    [Fact]
    public void OversizedPayloadIsReported()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Big)] public unsafe partial struct BigRecord { public fixed ulong Words[600]; } }
            """);
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("CKPT004", diagnostic.Id);
        Assert.Contains("4808", diagnostic.GetMessage());
    }

    [Fact]
    public void TrailingBytesOnAWrongFieldIsReported()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct PathRecord { [TrailingBytes] public ulong Length; } }
            """);
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("CKPT005", diagnostic.Id);
    }

    [Fact]
    public void AutoPropertyIsReportedWithTheFieldToWriteInstead()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct PropertyRecord { public ulong Size { get; set; } } }
            """);
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("CKPT006", diagnostic.Id);
        Assert.Contains("'public ulong Size;'", diagnostic.GetMessage());
    }

    [Fact]
    public void NestedRecordIsReported()
    {
        var (_, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { public static partial class Outer { [ImageRecord(RecordType.Sample)] public partial struct InnerRecord { public int A; } } }
            """);
        var diagnostic = Assert.Single(diagnostics);
        Assert.Equal("CKPT007", diagnostic.Id);
        Assert.Contains("'Outer'", diagnostic.GetMessage());
    }

    [Fact]
    public void ValidRecordsCompileWithoutDiagnostics()
    {
        var (output, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct PathRecord { public int Fd; [TrailingBytes] public uint Length; } }
            """);
        Assert.Empty(diagnostics);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
    }
}
