using CkptPS.HelpGenerator;

// HelpGenerator --assembly <CkptPS.dll> --markdown <module/help> --output <en-US/CkptPS.dll-Help.xml> [--check]
// Writes the MAML help of the module's cmdlets. Problems with the prose (a parameter without a
// description, prose about a parameter that does not exist, ...) are printed as warnings; with
// --check they fail the run (exit 1) and nothing is written. --output - writes to stdout.
string? assembly = null, markdown = null, output = null;
bool check = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--assembly" when i + 1 < args.Length: assembly = args[++i]; break;
        case "--markdown" when i + 1 < args.Length: markdown = args[++i]; break;
        case "--output" when i + 1 < args.Length: output = args[++i]; break;
        case "--check": check = true; break;
        default:
            Console.Error.WriteLine($"HelpGenerator: unexpected argument '{args[i]}'");
            return 2;
    }
}
if (assembly is null || markdown is null || output is null)
{
    Console.Error.WriteLine("usage: HelpGenerator --assembly <CkptPS.dll> --markdown <folder of <Cmdlet>.md> --output <file>|- [--check]");
    return 2;
}
try
{
    var cmdlets = CmdletReader.Read(assembly);
    var prose = CommandHelp.ReadFolder(markdown);
    var problems = HelpCheck.Problems(cmdlets, prose);
    foreach (string problem in problems) Console.Error.WriteLine($"HelpGenerator: {(check ? "error" : "warning")}: {problem}");
    if (check && problems.Count > 0) return 1;
    string maml = MamlWriter.Write(cmdlets, prose);
    if (output == "-") Console.Out.Write(maml);
    else
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        File.WriteAllText(output, maml);
        Console.Error.WriteLine($"HelpGenerator: {cmdlets.Count} cmdlets -> {output}");
    }
    return 0;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or BadImageFormatException)
{
    Console.Error.WriteLine($"HelpGenerator: {e.Message}");
    return 1;
}
