using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace Ckpt.Generators.Tests;

public class CachingTests
{
    [Fact]
    public void UnrelatedEditIsServedFromTheCache()
    {
        const string record = """
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct CachedRecord { public ulong A; public int B; } }
            """;
        var compilation = GeneratorHarness.Compile(record, "class Unrelated { int x = 1; }");
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);

        var unrelated = compilation.SyntaxTrees.Single(t => t.ToString().Contains("class Unrelated"));
        var edited = compilation.ReplaceSyntaxTree(unrelated,
            CSharpSyntaxTree.ParseText("class Unrelated { int x = 2; int y = 3; }", (CSharpParseOptions)unrelated.Options, unrelated.FilePath));
        var run = driver.RunGenerators(edited).GetRunResult().Results.Single();

        var parse = run.TrackedSteps[ImageRecordGenerator.ParseStep];
        Assert.All(parse.SelectMany(step => step.Outputs), output =>
            Assert.True(output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, output.Reason.ToString()));
        var collect = run.TrackedSteps[ImageRecordGenerator.CollectStep];
        Assert.All(collect.SelectMany(step => step.Outputs), output =>
            Assert.True(output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, output.Reason.ToString()));
        var catalog = run.TrackedSteps[ImageRecordGenerator.CatalogStep];
        Assert.NotEmpty(catalog.SelectMany(step => step.Outputs));
        Assert.All(catalog.SelectMany(step => step.Outputs), output =>
            Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
    }

    [Fact]
    public void RenamingAFieldLeavesTheCatalogUnchanged()
    {
        // The record's model changes (its serializer is emitted again), its type, size and trailing
        // length do not: the catalog model compares equal, so the catalog is not emitted again.
        const string record = "namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct CachedRecord { public ulong A; public int B; } }";
        var compilation = GeneratorHarness.Compile(record);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.First(t => t.ToString().Contains("CachedRecord"));
        var edited = compilation.ReplaceSyntaxTree(tree, CSharpSyntaxTree.ParseText(record.Replace("int B;", "int C;"), (CSharpParseOptions)tree.Options, tree.FilePath));
        var run = driver.RunGenerators(edited).GetRunResult().Results.Single();
        Assert.Contains(run.TrackedSteps[ImageRecordGenerator.ParseStep].SelectMany(step => step.Outputs),
            output => output.Reason == IncrementalStepRunReason.Modified);
        var catalog = run.TrackedSteps[ImageRecordGenerator.CatalogStep].SelectMany(step => step.Outputs).ToList();
        Assert.NotEmpty(catalog);
        Assert.All(catalog, output => Assert.True(output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, output.Reason.ToString()));
    }

    [Fact]
    public void EditingARecordRegeneratesIt()
    {
        var compilation = GeneratorHarness.Compile("""
            namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct CachedRecord { public ulong A; } }
            """);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.First(t => t.ToString().Contains("CachedRecord"));
        var edited = compilation.ReplaceSyntaxTree(tree, CSharpSyntaxTree.ParseText(
            "namespace Ckpt.Image.Records { [ImageRecord(RecordType.Sample)] public partial struct CachedRecord { public ulong A; public uint B; } }",
            (CSharpParseOptions)tree.Options, tree.FilePath));
        var run = driver.RunGenerators(edited).GetRunResult().Results.Single();
        Assert.Contains(run.TrackedSteps[ImageRecordGenerator.ParseStep].SelectMany(s => s.Outputs),
            output => output.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains("public const int Size = 24;", run.GeneratedSources.Single(s => s.HintName == "CachedRecord.g.cs").SourceText.ToString());
        Assert.Contains(run.TrackedSteps[ImageRecordGenerator.CatalogStep].SelectMany(s => s.Outputs),
            output => output.Reason == IncrementalStepRunReason.Modified);
        Assert.Matches(@"new\(RecordType\.Sample, +""Sample"", +24, null\), +// +500 CachedRecord",
            run.GeneratedSources.Single(s => s.HintName == "RecordCatalog.g.cs").SourceText.ToString());
    }
}
