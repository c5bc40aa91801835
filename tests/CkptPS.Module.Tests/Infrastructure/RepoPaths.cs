namespace CkptPS.Module.Tests.Infrastructure;

/// <summary>Where the built artifacts are: found by walking up from the test binaries to CkptPS.sln.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = FindRoot();
    public static string ModuleFolder => Path.Combine(Root, "artifacts", "CkptPS");
    public static string ModuleEngine => Path.Combine(ModuleFolder, "ckpt");

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "CkptPS.sln"))) return directory.FullName;
        }
        throw new InvalidOperationException($"CkptPS.sln not found above {AppContext.BaseDirectory}");
    }

    /// <summary>A fresh empty directory for one test's images.</summary>
    public static string NewScratchDirectory()
    {
        string path = Path.Combine(Path.GetTempPath(), "ckptps-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }
}
