using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>The built module as pwsh sees it: manifest, exports, loaded assemblies, help.</summary>
public sealed class ManifestAndHelpTests : IDisposable
{
    private static readonly string[] Cmdlets = ["Checkpoint-Process", "Get-CkptImage", "Restore-Process", "Test-CkptImage"];
    private readonly ModuleSession session = new();

    [Fact]
    public void Manifest_passes_Test_ModuleManifest_and_declares_views_and_types()
    {
        var result = session.Run("Test-ModuleManifest -Path ([System.IO.Path]::Combine($args[0], 'CkptPS.psd1'))", RepoPaths.ModuleFolder).AssertClean();
        var manifest = Assert.IsType<PSModuleInfo>(Assert.Single(result.Output).BaseObject);
        Assert.Equal(Cmdlets, manifest.ExportedCmdlets.Keys.Order());
        Assert.Empty(manifest.ExportedFunctions);
        Assert.Empty(manifest.ExportedAliases);
        Assert.Contains(manifest.ExportedFormatFiles, f => f.EndsWith("CkptPS.format.ps1xml", StringComparison.Ordinal));
        Assert.Contains(manifest.ExportedTypeFiles, f => f.EndsWith("CkptPS.types.ps1xml", StringComparison.Ordinal));
    }

    [Fact]
    public void Imported_module_exports_exactly_the_cmdlets_from_the_module_folder()
    {
        var result = session.Run("(Get-Module CkptPS).ExportedCommands.Values | ForEach-Object { '{0}|{1}|{2}' -f $_.Name, $_.CommandType, $_.DLL }").AssertClean();
        var rows = result.Output.Select(o => o.ToString().Split('|')).OrderBy(r => r[0]).ToList();
        Assert.Equal(Cmdlets, rows.Select(r => r[0]));
        Assert.All(rows, row =>
        {
            Assert.Equal("Cmdlet", row[1]);
            Assert.Equal(Path.Combine(RepoPaths.ModuleFolder, "CkptPS.dll"), row[2]);
        });
    }

    [Fact]
    public void The_image_reader_assembly_shipped_with_the_module_is_usable_from_the_session()
    {
        // A type of Ckpt.Image.dll resolved through the module: RequiredAssemblies loaded it.
        var result = session.Run("[Ckpt.Image.Records.VmaType]::Anon.value__; [CkptPS.CkptVma].Assembly.Location").AssertClean();
        Assert.Equal(1u, Convert.ToUInt32(result.Output[0].BaseObject));
        Assert.Equal(Path.Combine(RepoPaths.ModuleFolder, "CkptPS.dll"), result.Output[1].ToString());
    }

    [Theory]
    [InlineData("Checkpoint-Process")]
    [InlineData("Restore-Process")]
    [InlineData("Get-CkptImage")]
    [InlineData("Test-CkptImage")]
    public void Every_cmdlet_and_parameter_has_help_with_examples(string cmdlet)
    {
        var result = session.Run("""
            $help = Get-Help $args[0] -Full
            'synopsis|' + $help.Synopsis
            'examples|' + @($help.examples.example).Count
            foreach ($example in $help.examples.example) { 'code|' + $example.code }
            $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
            foreach ($name in (Get-Command $args[0]).Parameters.Keys | Where-Object { $_ -notin $common }) {
                $described = Get-Help $args[0] -Parameter $name
                'parameter|' + $name + '|' + (($described.description | ForEach-Object { $_.Text }) -join ' ')
            }
            """, cmdlet).AssertClean();
        var lines = result.Output.Select(o => o.ToString()).ToList();
        string synopsis = lines.Single(l => l.StartsWith("synopsis|", StringComparison.Ordinal))["synopsis|".Length..];
        Assert.False(string.IsNullOrWhiteSpace(synopsis));
        Assert.DoesNotContain(cmdlet, synopsis); // pwsh shows the syntax as synopsis when help is missing
        Assert.True(int.Parse(lines.Single(l => l.StartsWith("examples|", StringComparison.Ordinal))["examples|".Length..]) >= 2);
        Assert.All(lines.Where(l => l.StartsWith("code|", StringComparison.Ordinal)), code => Assert.Contains(cmdlet, code));
        var parameters = lines.Where(l => l.StartsWith("parameter|", StringComparison.Ordinal)).Select(l => l.Split('|', 3)).ToList();
        Assert.NotEmpty(parameters);
        Assert.All(parameters, p => Assert.Contains("For example", p[2]));
    }

    public void Dispose() => session.Dispose();
}
