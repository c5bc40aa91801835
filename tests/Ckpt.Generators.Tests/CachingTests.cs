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
        Assert.Contains("public const int Size = 24;", run.GeneratedSources.Single().SourceText.ToString());
    }
}
