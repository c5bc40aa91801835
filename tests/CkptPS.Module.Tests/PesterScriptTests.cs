using System.Management.Automation.Language;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>
/// The Pester tests run under real pwsh in CI (.ci/run, after the xUnit projects); this is the
/// quick check before that: the PowerShell parser must accept every Pester file.
/// </summary>
public class PesterScriptTests
{
    public static TheoryData<string> PesterFiles() =>
        [.. Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "Pester"), "*.Tests.ps1").Select(path => Path.GetFileName(path))];

    [Theory]
    [MemberData(nameof(PesterFiles))]
    public void Pester_file_parses_without_errors(string file)
    {
        Parser.ParseFile(Path.Combine(RepoPaths.Root, "Pester", file), out _, out ParseError[] errors);
        Assert.True(errors.Length == 0, string.Join("\n", errors.Select(e => $"{e.Extent.StartLineNumber}:{e.Extent.StartColumnNumber} {e.Message}")));
    }
}
