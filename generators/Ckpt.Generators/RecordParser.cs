using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Ckpt.Generators
{
    /// <summary>Turns an [ImageRecord] struct into a RecordModel with its C layout, or diagnostics.</summary>
    internal static class RecordParser
    {
        private const int HeaderSize = 8; // {u32 type; u32 len}
        private const string TrailingAttribute = "Ckpt.Image.Records.TrailingBytesAttribute";

        public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var syntax = (TypeDeclarationSyntax)context.TargetNode;
            var diagnostics = ImmutableArray.CreateBuilder<DiagnosticInfo>();

            if (!syntax.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                diagnostics.Add(Diagnostic(Diagnostics.NotPartial.Id, syntax.Identifier.GetLocation(), type.Name));
                return new ParseResult(null, new EquatableArray<DiagnosticInfo>(diagnostics.ToImmutable()));
            }

            if (type.ContainingType is { } container)
            {
                diagnostics.Add(Diagnostic(Diagnostics.Nested.Id, syntax.Identifier.GetLocation(), type.Name, container.Name));
                return new ParseResult(null, new EquatableArray<DiagnosticInfo>(diagnostics.ToImmutable()));
            }

            var attribute = context.Attributes[0];
            var typeArgument = attribute.ConstructorArguments.Length == 1 ? attribute.ConstructorArguments[0] : default;
            var typeNumber = typeArgument.Value is uint number ? number : 0u;
            var typeMember = typeArgument.Type is INamedTypeSymbol enumType
                ? enumType.GetMembers().OfType<IFieldSymbol>()
                    .FirstOrDefault(f => f.HasConstantValue && f.ConstantValue is uint v && v == typeNumber)?.Name
                : null;

            var fields = ImmutableArray.CreateBuilder<FieldModel>();
            string? trailingField = null;
            var offset = HeaderSize;
            foreach (var field in type.GetMembers().OfType<IFieldSymbol>())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (field.IsStatic || field.IsConst) continue;
                if (field.AssociatedSymbol is IPropertySymbol property)
                {
                    var propertyLocation = property.Locations.FirstOrDefault() ?? syntax.Identifier.GetLocation();
                    diagnostics.Add(Diagnostic(Diagnostics.AutoProperty.Id, propertyLocation, property.Name, type.Name, property.Type.ToDisplayString()));
                    continue;
                }
                var location = field.Locations.FirstOrDefault() ?? syntax.Identifier.GetLocation();
                var model = DescribeField(field, offset);
                if (model is null)
                {
                    var typeName = field.IsFixedSizeBuffer && field.Type is IPointerTypeSymbol pointer
                        ? pointer.PointedAtType.ToDisplayString() + "[]"
                        : field.Type.ToDisplayString();
                    diagnostics.Add(Diagnostic(Diagnostics.UnsupportedField.Id, location, field.Name, type.Name, typeName));
                    continue;
                }
                if (field.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == TrailingAttribute))
                {
                    var problem = trailingField is not null ? "another field already is"
                        : model.Primitive != "uint" || model.IsFixedBuffer || model.EnumType is not null ? "it is not a 'uint'"
                        : null;
                    if (problem is null) trailingField = field.Name;
                    else diagnostics.Add(Diagnostic(Diagnostics.BadTrailingField.Id, location, field.Name, type.Name, problem));
                }
                fields.Add(model);
                offset = model.Offset + model.Size;
            }

            var size = Align(offset, 8);
            if (size - HeaderSize > Diagnostics.MaxFixedPayload)
            {
                diagnostics.Add(Diagnostic(Diagnostics.PayloadTooLarge.Id, syntax.Identifier.GetLocation(),
                    type.Name, size.ToString(), Diagnostics.MaxFixedPayload.ToString()));
            }

            var record = diagnostics.Count > 0 ? null : new RecordModel(
                type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString(),
                type.Name,
                typeMember ?? "",
                typeNumber,
                syntax.Modifiers.Any(SyntaxKind.UnsafeKeyword),
                new EquatableArray<FieldModel>(fields.ToImmutable()),
                size,
                trailingField);
            return new ParseResult(record, new EquatableArray<DiagnosticInfo>(diagnostics.ToImmutable()));
        }

        /// <summary>Places a field at its natural alignment after <paramref name="offset"/>, as gcc does.</summary>
        private static FieldModel? DescribeField(IFieldSymbol field, int offset)
        {
            ITypeSymbol elementType = field.Type;
            var count = 1;
            if (field.IsFixedSizeBuffer && field.Type is IPointerTypeSymbol pointer)
            {
                elementType = pointer.PointedAtType;
                count = field.FixedSize;
            }
            string? enumType = null;
            if (elementType is INamedTypeSymbol { TypeKind: TypeKind.Enum, EnumUnderlyingType: { } underlying })
            {
                enumType = elementType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
                elementType = underlying;
            }
            var (primitive, elementSize) = elementType.SpecialType switch
            {
                SpecialType.System_Byte => ("byte", 1),
                SpecialType.System_SByte => ("sbyte", 1),
                SpecialType.System_UInt16 => ("ushort", 2),
                SpecialType.System_Int16 => ("short", 2),
                SpecialType.System_UInt32 => ("uint", 4),
                SpecialType.System_Int32 => ("int", 4),
                SpecialType.System_UInt64 => ("ulong", 8),
                SpecialType.System_Int64 => ("long", 8),
                _ => ((string?)null, 0),
            };
            if (primitive is null || (count > 1 && enumType is not null)) return null;
            return new FieldModel(field.Name, primitive, enumType, elementSize, count, Align(offset, elementSize));
        }

        private static int Align(int value, int alignment) => (value + alignment - 1) / alignment * alignment;

        private static DiagnosticInfo Diagnostic(string id, Location location, params string[] arguments) =>
            new DiagnosticInfo(id, location.SourceTree?.FilePath ?? "", location.SourceSpan.Start, location.SourceSpan.Length,
                new EquatableArray<string>(arguments.ToImmutableArray()));
    }
}
