using System.Collections.Immutable;
using System.Reflection;
using Ckpt.Generators;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Ckpt.Generators.Tests;

/// <summary>Runs the generator over source text with the attribute and interface it expects.</summary>
internal static class GeneratorHarness
{
    /// <summary>The parts of Ckpt.Image the generated code refers to, as source.</summary>
    public const string Support = """
        namespace Ckpt.Image.Records
        {
            public enum RecordType : uint { Header = 1, Vma = 402, Sample = 500, Other = 501, Big = 502 }
            [System.AttributeUsage(System.AttributeTargets.Struct)]
            public sealed class ImageRecordAttribute : System.Attribute { public ImageRecordAttribute(RecordType type) { } }
            [System.AttributeUsage(System.AttributeTargets.Field)]
            public sealed class TrailingBytesAttribute : System.Attribute { }
        }
        namespace Ckpt.Image
        {
            public interface IImageRecord<TSelf> where TSelf : struct, IImageRecord<TSelf>
            {
                static abstract Ckpt.Image.Records.RecordType RecordType { get; }
                static abstract int FixedSize { get; }
                static abstract TSelf ReadFrom(System.ReadOnlySpan<byte> record);
                void WriteTo(System.Span<byte> destination, uint recordLength);
                uint TrailingLength { get; }
            }
            public readonly record struct RecordDescriptor(Ckpt.Image.Records.RecordType Type, string Name, int FixedSize, int? TrailingLengthOffset)
            {
                public bool HasTrailingBytes => TrailingLengthOffset is not null;
            }
        }
        """;

    public static CSharpCompilation Compile(params string[] sources)
    {
        var trees = sources.Append(Support).Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Latest), path: $"source{s.GetHashCode():x}.cs"));
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(p => MetadataReference.CreateFromFile(p));
        return CSharpCompilation.Create("Records", trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true));
    }

    public static GeneratorDriver CreateDriver() =>
        CSharpGeneratorDriver.Create([new ImageRecordGenerator().AsSourceGenerator()],
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    public static (Compilation Output, ImmutableArray<Diagnostic> Diagnostics, GeneratorDriverRunResult Run) Run(params string[] sources)
    {
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(Compile(sources), out var output, out var diagnostics);
        return (output, diagnostics, driver.GetRunResult());
    }

    /// <summary>Compiles the generated code and loads it, to call the serializers for real.</summary>
    public static Assembly Load(Compilation output)
    {
        using var image = new MemoryStream();
        var emit = output.Emit(image);
        if (!emit.Success)
            throw new InvalidOperationException(string.Join("\n", emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        return Assembly.Load(image.ToArray());
    }
}
