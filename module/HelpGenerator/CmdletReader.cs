using System.Collections.ObjectModel;
using System.Reflection;
using System.Runtime.InteropServices;

namespace CkptPS.HelpGenerator;

/// <summary>One parameter set a parameter belongs to, with what the [Parameter] attribute says for it.</summary>
public sealed record ParameterSetBinding(string SetName, bool Mandatory, int? Position, bool FromPipeline, bool FromPipelineByPropertyName);

/// <summary>A cmdlet parameter as PowerShell binds it: from its property and attributes.</summary>
public sealed record CmdletParameter(
    string Name,
    string TypeName,                      // the short type name Get-Help shows: Int32[], String, SwitchParameter
    bool IsSwitch,
    bool IsArray,
    IReadOnlyList<string> Aliases,
    bool SupportsWildcards,
    IReadOnlyList<ParameterSetBinding> Sets); // AllParameterSets for a parameter without ParameterSetName

/// <summary>A cmdlet as its attributes declare it.</summary>
public sealed record CmdletMetadata(
    string Name,
    string Verb,
    string Noun,
    string ClassName,
    bool SupportsShouldProcess,
    string? DefaultParameterSet,                  // [Cmdlet(DefaultParameterSetName = ...)]
    IReadOnlyList<string> ParameterSets,          // named sets, the default first; empty: one unnamed set
    IReadOnlyList<CmdletParameter> Parameters,    // declaration order; WhatIf and Confirm last when SupportsShouldProcess
    IReadOnlyList<string> OutputTypes)            // full type names from [OutputType]
{
    public const string AllParameterSets = "__AllParameterSets";

    public CmdletParameter? Find(string parameterName) =>
        Parameters.FirstOrDefault(p => string.Equals(p.Name, parameterName, StringComparison.OrdinalIgnoreCase));

    /// <summary>The parameters of one set (null: the only, unnamed set), in declaration order.</summary>
    public IEnumerable<(CmdletParameter Parameter, ParameterSetBinding Binding)> InSet(string? setName) =>
        from parameter in Parameters
        let binding = parameter.Sets.FirstOrDefault(s => s.SetName == setName)
                      ?? parameter.Sets.FirstOrDefault(s => s.SetName == AllParameterSets)
        where binding is not null
        select (parameter, binding);
}

/// <summary>
/// Reads the cmdlets of a module assembly with MetadataLoadContext: the assembly is inspected, never
/// loaded to run, so a net8.0 module compiled against PowerShellStandard.Library is read the same
/// from this net10.0 tool. Its attributes are resolved against the PowerShellStandard reference
/// assembly copied next to this tool (reference/System.Management.Automation.dll).
/// </summary>
public static class CmdletReader
{
    private const string Sma = "System.Management.Automation.";

    public static IReadOnlyList<CmdletMetadata> Read(string assemblyPath)
    {
        assemblyPath = Path.GetFullPath(assemblyPath);
        if (!File.Exists(assemblyPath)) throw new FileNotFoundException($"module assembly not found: {assemblyPath}", assemblyPath);
        string reference = Path.Combine(Path.GetDirectoryName(typeof(CmdletReader).Assembly.Location)!, "reference", "System.Management.Automation.dll");
        if (!File.Exists(reference)) throw new FileNotFoundException($"PowerShell reference assembly not found: {reference}", reference);

        // One file per assembly name: the runtime's, then the module folder's, then the reference.
        var files = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string file in Directory.EnumerateFiles(RuntimeEnvironment.GetRuntimeDirectory(), "*.dll")
                     .Concat(Directory.EnumerateFiles(Path.GetDirectoryName(assemblyPath)!, "*.dll"))
                     .Append(reference))
        {
            files.TryAdd(Path.GetFileNameWithoutExtension(file), file);
        }
        files[Path.GetFileNameWithoutExtension(assemblyPath)] = assemblyPath;

        using var context = new MetadataLoadContext(new PathAssemblyResolver(files.Values));
        Assembly module = context.LoadFromAssemblyPath(assemblyPath);
        return module.GetExportedTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && Attribute(t, "CmdletAttribute") is not null)
            .Select(ReadCmdlet)
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToList();
    }

    private static CmdletMetadata ReadCmdlet(Type type)
    {
        CustomAttributeData cmdlet = Attribute(type, "CmdletAttribute")!;
        string verb = (string)cmdlet.ConstructorArguments[0].Value!;
        string noun = (string)cmdlet.ConstructorArguments[1].Value!;
        bool shouldProcess = Named(cmdlet, "SupportsShouldProcess") is true;
        string? defaultSet = Named(cmdlet, "DefaultParameterSetName") as string;

        var parameters = new List<CmdletParameter>();
        // Base classes first, then declaration (metadata) order within each class.
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .OrderBy(p => Depth(p.DeclaringType!)).ThenBy(p => p.MetadataToken);
        foreach (PropertyInfo property in properties)
        {
            var bindings = property.GetCustomAttributesData().Where(a => a.AttributeType.FullName == Sma + "ParameterAttribute").ToList();
            if (bindings.Count == 0 || bindings.Any(b => Named(b, "DontShow") is true)) continue;
            Type propertyType = property.PropertyType;
            parameters.Add(new CmdletParameter(
                property.Name,
                propertyType.Name,
                propertyType.FullName == Sma + "SwitchParameter",
                propertyType.IsArray,
                Attribute(property, "AliasAttribute") is { } alias ? Strings(alias.ConstructorArguments[0]) : [],
                Attribute(property, "SupportsWildcardsAttribute") is not null,
                bindings.Select(b => new ParameterSetBinding(
                    Named(b, "ParameterSetName") as string ?? CmdletMetadata.AllParameterSets,
                    Named(b, "Mandatory") is true,
                    Named(b, "Position") is int position && position >= 0 ? position : null,
                    Named(b, "ValueFromPipeline") is true,
                    Named(b, "ValueFromPipelineByPropertyName") is true)).ToList()));
        }
        if (shouldProcess)
        {
            // Added by PowerShell to every cmdlet that supports ShouldProcess.
            ParameterSetBinding[] everywhere = [new(CmdletMetadata.AllParameterSets, false, null, false, false)];
            parameters.Add(new CmdletParameter("WhatIf", "SwitchParameter", true, false, ["wi"], false, everywhere));
            parameters.Add(new CmdletParameter("Confirm", "SwitchParameter", true, false, ["cf"], false, everywhere));
        }

        var sets = parameters.SelectMany(p => p.Sets).Select(s => s.SetName)
            .Where(s => s != CmdletMetadata.AllParameterSets).Distinct().ToList();
        if (defaultSet is not null && sets.Remove(defaultSet)) sets.Insert(0, defaultSet);

        var outputs = new List<string>();
        foreach (CustomAttributeData output in type.GetCustomAttributesData().Where(a => a.AttributeType.FullName == Sma + "OutputTypeAttribute"))
        {
            foreach (CustomAttributeTypedArgument argument in (ReadOnlyCollection<CustomAttributeTypedArgument>)output.ConstructorArguments[0].Value!)
            {
                outputs.Add(argument.Value is Type t ? t.FullName! : (string)argument.Value!);
            }
        }
        return new CmdletMetadata($"{verb}-{noun}", verb, noun, type.FullName!, shouldProcess, defaultSet, sets, parameters, outputs);
    }

    private static int Depth(Type type)
    {
        int depth = 0;
        for (Type? t = type.BaseType; t is not null; t = t.BaseType) depth++;
        return depth;
    }

    private static CustomAttributeData? Attribute(MemberInfo member, string name) =>
        member.GetCustomAttributesData().FirstOrDefault(a => a.AttributeType.FullName == Sma + name);

    private static object? Named(CustomAttributeData attribute, string name) =>
        attribute.NamedArguments.Where(a => a.MemberName == name).Select(a => a.TypedValue.Value).FirstOrDefault();

    private static List<string> Strings(CustomAttributeTypedArgument argument) =>
        ((ReadOnlyCollection<CustomAttributeTypedArgument>)argument.Value!).Select(a => (string)a.Value!).ToList();
}
