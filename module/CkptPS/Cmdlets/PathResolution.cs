using System.Management.Automation;

namespace CkptPS.Cmdlets;

/// <summary>Turns the -Path arguments users type (relative, ~, wildcards, PSPath) into file system paths.</summary>
internal static class PathResolution
{
    /// <summary>
    /// Existing files for an input path. A path that exists as typed is taken literally (so a
    /// PSPath from Get-ChildItem with [brackets] in it works); otherwise wildcards are expanded.
    /// </summary>
    public static IReadOnlyList<string> ResolveExisting(PSCmdlet cmdlet, string path, out ErrorRecord? error)
    {
        error = null;
        string literal = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
        if (File.Exists(literal)) return [literal];
        if (Directory.Exists(literal))
        {
            error = new ErrorRecord(new IOException($"'{literal}' is a directory, not a checkpoint image."),
                "PathIsDirectory", ErrorCategory.InvalidArgument, path);
            return [];
        }
        if (WildcardPattern.ContainsWildcardCharacters(path))
        {
            try
            {
                var resolved = cmdlet.SessionState.Path.GetResolvedProviderPathFromPSPath(path, out var provider);
                if (provider.Name == "FileSystem")
                {
                    var files = resolved.Where(File.Exists).ToList();
                    if (files.Count > 0) return files;
                }
            }
            catch (ItemNotFoundException) { }
        }
        error = new ErrorRecord(new FileNotFoundException($"Cannot find the image '{literal}'.", literal),
            "ImageNotFound", ErrorCategory.ObjectNotFound, path);
        return [];
    }

    /// <summary>A path to write to: resolved against the current location, not required to exist.</summary>
    public static string ResolveForOutput(PSCmdlet cmdlet, string path) =>
        cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
}
