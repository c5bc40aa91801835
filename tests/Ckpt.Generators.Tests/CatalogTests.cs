using System.Reflection;
using System.Text.RegularExpressions;
using Xunit;

namespace Ckpt.Generators.Tests;

/// <summary>The one RecordCatalog per compilation: every record, its size, its trailing length.</summary>
public class CatalogTests
{
    // Out of type order on purpose; Other has trailing bytes after a 4-byte field.
    private const string Records = """
        namespace Ckpt.Image.Records
        {
            [ImageRecord(RecordType.Other)] public partial struct PathRecord { public int Fd; [TrailingBytes] public uint Length; }
            [ImageRecord(RecordType.Sample)] public partial struct SampleRecord { public ulong A; public int B; }
            [ImageRecord(RecordType.Header)] public partial struct HeaderRecord { public byte Flag; }
            [ImageRecord(RecordType.Big)] public unsafe partial struct BigRecord { public fixed ulong Words[9]; public ushort Last; }
        }
        """;

    [Fact]
    public void CatalogListsEveryRecordSortedByTypeWithItsSize()
    {
        var (output, diagnostics, run) = GeneratorHarness.Run(Records);
        Assert.Empty(diagnostics);
        var assembly = GeneratorHarness.Load(output);
        var catalog = assembly.GetType("Ckpt.Image.Records.RecordCatalog")!;
        var all = ((System.Collections.IEnumerable)catalog.GetProperty("All")!.GetValue(null)!).Cast<object>().ToList();

        var rows = all.Select(d => (Type: Convert.ToUInt32(Get(d, "Type")), Name: (string)Get(d, "Name"),
            FixedSize: (int)Get(d, "FixedSize"), Trailing: (bool)Get(d, "HasTrailingBytes"), TrailingAt: (int?)Get(d, "TrailingLengthOffset"))).ToList();
        var expected = new (uint, string, int, bool, int?)[]
            { (1u, "Header", 16, false, null), (500u, "Sample", 24, false, null), (501u, "Other", 16, true, 12), (502u, "Big", 88, false, null) };
        Assert.Equal(expected, rows.Select(r => (r.Type, r.Name, r.FixedSize, r.Trailing, r.TrailingAt)));

        // Each size is the record's own generated Size.
        foreach (var (type, name, structName) in new[] { (1u, "Header", "HeaderRecord"), (500u, "Sample", "SampleRecord"), (501u, "Other", "PathRecord"), (502u, "Big", "BigRecord") })
        {
            var size = (int)assembly.GetType($"Ckpt.Image.Records.{structName}")!.GetField("Size")!.GetValue(null)!;
            Assert.Equal(size, rows.Single(r => r.Type == type).FixedSize);
            Assert.Equal(0, size % 8);
        }

        // TryGet finds every record and nothing else (Vma = 402 has no struct here).
        var recordType = assembly.GetType("Ckpt.Image.Records.RecordType")!;
        var tryGet = catalog.GetMethod("TryGet")!;
        foreach (var number in new uint[] { 1, 402, 500, 501, 502, 0, 77 })
        {
            object?[] arguments = [Enum.ToObject(recordType, number), null];
            var found = (bool)tryGet.Invoke(null, arguments)!;
            Assert.Equal(rows.Any(r => r.Type == number), found);
            if (found) Assert.Equal(number, Convert.ToUInt32(Get(arguments[1]!, "Type")));
        }

        // Readable: one table line per record, in type order, each with its number and struct.
        var text = run.Results.Single().GeneratedSources.Single(s => s.HintName == "RecordCatalog.g.cs").SourceText.ToString();
        var lines = text.Split('\n').Where(l => l.TrimStart().StartsWith("new(RecordType.")).ToList();
        Assert.Equal(4, lines.Count);
        Assert.Matches(@"new\(RecordType\.Header, +""Header"", +16, null\), +//    1 HeaderRecord$", lines[0]);
        Assert.Matches(@"new\(RecordType\.Other, +""Other"", +16, 12\), +//  501 PathRecord$", lines[2]);
    }

    [Fact]
    public void NameFallsBackToTheStructNameForANumberWithoutAMember()
    {
        var (output, diagnostics, run) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records { [ImageRecord((RecordType)777)] public partial struct LooseRecord { public long A; } }
            """);
        var text = run.Results.Single().GeneratedSources.Single(s => s.HintName == "RecordCatalog.g.cs").SourceText.ToString();
        Assert.Contains(@"new((RecordType)777u,", text);
        Assert.Matches(@"""Loose"", +16, null\)", text);
    }

    [Fact]
    public void DuplicateTypeNumbersStillGiveACompilingCatalog()
    {
        var (output, diagnostics, _) = GeneratorHarness.Run("""
            namespace Ckpt.Image.Records
            {
                [ImageRecord(RecordType.Sample)] public partial struct FirstRecord { public int A; }
                [ImageRecord(RecordType.Sample)] public partial struct SecondRecord { public long B; }
            }
            """);
        Assert.Equal("CKPT003", Assert.Single(diagnostics).Id);
        var catalog = output.SyntaxTrees.Single(t => t.FilePath.EndsWith("RecordCatalog.g.cs"));
        Assert.Empty(output.GetDiagnostics().Where(d => d.Location.SourceTree == catalog && d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
        Assert.Single(Regex.Matches(catalog.ToString(), @"new\(RecordType\.Sample,"));
    }

    [Fact]
    public void NoRecordsNoCatalog()
    {
        var (_, _, run) = GeneratorHarness.Run("class Plain { }");
        Assert.DoesNotContain(run.Results.Single().GeneratedSources, s => s.HintName == "RecordCatalog.g.cs");
    }

    private static object Get(object instance, string property) =>
        instance.GetType().GetProperty(property, BindingFlags.Public | BindingFlags.Instance)!.GetValue(instance)!;
}
