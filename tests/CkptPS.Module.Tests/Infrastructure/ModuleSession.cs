using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace CkptPS.Module.Tests.Infrastructure;

/// <summary>
/// An in-process PowerShell runspace (the default session state, as pwsh starts with) that
/// has imported the built module from artifacts/CkptPS, with a host that records output.
/// </summary>
internal sealed class ModuleSession : IDisposable
{
    private readonly Runspace runspace;
    public CapturingHost Host { get; } = new();

    public ModuleSession()
    {
        var state = InitialSessionState.CreateDefault2();
        runspace = RunspaceFactory.CreateRunspace(Host, state);
        runspace.Open();
        var imported = Run("Import-Module $args[0] -PassThru -ErrorAction Stop", RepoPaths.ModuleFolder);
        if (imported.Errors.Count > 0 || imported.Output.Count != 1)
            throw new InvalidOperationException($"Import-Module {RepoPaths.ModuleFolder} failed: {imported.ErrorText}");
    }

    /// <summary>Runs a script with $args bound to <paramref name="arguments"/>; collects output, errors and warnings.</summary>
    public ScriptResult Run(string script, params object?[] arguments)
    {
        using var shell = PowerShell.Create();
        shell.Runspace = runspace;
        shell.AddScript(script);
        foreach (var argument in arguments) shell.AddArgument(argument);
        Collection<PSObject> output;
        Exception? terminating = null;
        try
        {
            output = shell.Invoke();
        }
        catch (RuntimeException exception)
        {
            output = [];
            terminating = exception;
        }
        return new ScriptResult(output, shell.Streams.Error.ToList(), shell.Streams.Warning.Select(w => w.Message).ToList(),
            shell.Streams.Progress.ToList(), terminating);
    }

    /// <summary>A PowerShell instance on this session's runspace, for tests that invoke asynchronously.</summary>
    public PowerShell CreateShell()
    {
        var shell = PowerShell.Create();
        shell.Runspace = runspace;
        return shell;
    }

    public void Dispose() => runspace.Dispose();
}

internal sealed record ScriptResult(Collection<PSObject> Output, List<ErrorRecord> Errors, List<string> Warnings,
    List<ProgressRecord> Progress, Exception? Terminating)
{
    public string ErrorText => string.Join("\n", Errors.Select(e => $"{e.FullyQualifiedErrorId} [{e.CategoryInfo.Category}]: {e.Exception.Message}"))
        + (Terminating is null ? "" : "\nterminating: " + Terminating.Message);

    public IEnumerable<T> OfType<T>() => Output.Select(o => o.BaseObject).OfType<T>();

    /// <summary>Fails with everything PowerShell reported when the script did not run cleanly.</summary>
    public ScriptResult AssertClean()
    {
        if (Errors.Count > 0 || Terminating is not null) throw new Xunit.Sdk.XunitException("script failed:\n" + ErrorText);
        return this;
    }
}
