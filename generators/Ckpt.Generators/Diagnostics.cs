using Microsoft.CodeAnalysis;

namespace Ckpt.Generators
{
    internal static class Diagnostics
    {
        /// <summary>Largest fixed payload a record may declare; bigger data belongs in trailing bytes.</summary>
        public const int MaxFixedPayload = 4096;

        public static readonly DiagnosticDescriptor NotPartial = new DiagnosticDescriptor(
            "CKPT001", "Image record is not partial",
            "Record '{0}' must be declared 'partial' so that its serializer can be generated: write 'partial struct {0}'",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor UnsupportedField = new DiagnosticDescriptor(
            "CKPT002", "Unsupported record field type",
            "Field '{0}' of record '{1}' has type '{2}', which has no fixed C layout: use an integer type, an enum with an explicit integer underlying type, or a fixed buffer of integers",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor DuplicateType = new DiagnosticDescriptor(
            "CKPT003", "Duplicate record type number",
            "Records '{0}' and '{1}' both use record type {2}: give each record its own RecordType value",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor PayloadTooLarge = new DiagnosticDescriptor(
            "CKPT004", "Record payload too large",
            "Record '{0}' has a fixed size of {1} bytes, over the limit of {2}: move variable or bulky data into [TrailingBytes] data or a separate record",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor BadTrailingField = new DiagnosticDescriptor(
            "CKPT005", "Invalid [TrailingBytes] field",
            "Field '{0}' of record '{1}' is marked [TrailingBytes] but {2}: mark exactly one 'uint' field",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor AutoProperty = new DiagnosticDescriptor(
            "CKPT006", "Auto-property in an image record",
            "Record '{1}' declares auto-property '{0}', whose hidden backing field cannot be laid out by name: declare it as a public field, 'public {2} {0};'",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static readonly DiagnosticDescriptor Nested = new DiagnosticDescriptor(
            "CKPT007", "Image record nested in another type",
            "Record '{0}' is declared inside '{1}': declare image records directly in a namespace",
            "CkptPS.Records", DiagnosticSeverity.Error, isEnabledByDefault: true);

        public static DiagnosticDescriptor ById(string id) => id switch
        {
            "CKPT001" => NotPartial,
            "CKPT002" => UnsupportedField,
            "CKPT003" => DuplicateType,
            "CKPT004" => PayloadTooLarge,
            "CKPT006" => AutoProperty,
            "CKPT007" => Nested,
            _ => BadTrailingField,
        };
    }
}
