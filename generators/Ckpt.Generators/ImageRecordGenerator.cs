using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Ckpt.Generators
{
    /// <summary>
    /// Generates the serializer of every [ImageRecord] struct (parse into an equatable model, then
    /// emit) and one RecordCatalog of them all. Step names let tests check that unrelated edits
    /// are served from the cache.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class ImageRecordGenerator : IIncrementalGenerator
    {
        public const string ParseStep = "ParseRecords";
        public const string CollectStep = "CollectRecords";
        public const string CatalogStep = "RecordCatalog";
        private const string AttributeName = "Ckpt.Image.Records.ImageRecordAttribute";

        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var parsed = context.SyntaxProvider
                .ForAttributeWithMetadataName(AttributeName,
                    static (node, _) => node is Microsoft.CodeAnalysis.CSharp.Syntax.StructDeclarationSyntax,
                    RecordParser.Parse)
                .WithTrackingName(ParseStep);

            context.RegisterSourceOutput(parsed, static (output, result) =>
            {
                foreach (var diagnostic in result.Diagnostics) Report(output, diagnostic);
                if (result.Record is { } record)
                    output.AddSource($"{record.Name}.g.cs", SourceText.From(RecordEmitter.Emit(record), System.Text.Encoding.UTF8));
            });

            // Type numbers must be unique across all records: a whole-set check.
            var duplicates = parsed
                .Select(static (result, _) => result.Record is { } r ? new TypeNumberUse(r.Name, r.TypeNumber) : null)
                .Where(static use => use is not null)
                .Collect()
                .WithTrackingName(CollectStep);
            context.RegisterSourceOutput(duplicates, static (output, uses) =>
            {
                foreach (var group in uses.GroupBy(u => u!.TypeNumber).Where(g => g.Count() > 1))
                {
                    var names = group.Select(u => u!.Name).OrderBy(n => n, System.StringComparer.Ordinal).ToArray();
                    for (var i = 1; i < names.Length; i++)
                        output.ReportDiagnostic(Diagnostic.Create(Diagnostics.DuplicateType, Location.None, names[0], names[i], group.Key));
                }
            });

            // One catalog of all records (type, name, fixed size, trailing length), sorted by type.
            var catalog = parsed
                .Select(static (result, _) => result.Record is { } r ? CatalogEntry.From(r) : null)
                .Where(static entry => entry is not null)
                .Collect()
                .Select(static (entries, _) => CatalogModel.From(entries))
                .WithTrackingName(CatalogStep);
            context.RegisterSourceOutput(catalog, static (output, model) =>
            {
                if (model.Entries.Count > 0) // a compilation without records gets no catalog
                    output.AddSource(CatalogEmitter.HintName, SourceText.From(CatalogEmitter.Emit(model), System.Text.Encoding.UTF8));
            });
        }

        private static void Report(SourceProductionContext output, DiagnosticInfo info)
        {
            var location = info.FilePath.Length == 0
                ? Location.None
                : Location.Create(info.FilePath, new TextSpan(info.Start, info.Length), default);
            output.ReportDiagnostic(Diagnostic.Create(Diagnostics.ById(info.Id), location, info.Arguments.ToArray<object>()));
        }

        private sealed record TypeNumberUse(string Name, uint TypeNumber);
    }
}
