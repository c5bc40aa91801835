using System.CommandLine;
using Ckpt.Cli;
using Ckpt.Engine.Restore;

StageProfile.Mark("main");
if (RestoreArguments.TryParse(args) is { } restore) // before System.CommandLine is built: see RestoreArguments
{
    int restored;
    try { restored = RestoreCommand.Execute(restore); }
    catch (Exception e) when (e is not OperationCanceledException) // a bug: reported as System.CommandLine's Invoke reports it
    {
        Console.Error.WriteLine($"Unhandled exception: {e}");
        restored = 1;
    }
    StageProfile.Mark("exit");
    return restored;
}

var root = new RootCommand("ckpt: checkpoint and restore Linux processes (see docs/ARCHITECTURE.md)");
root.Subcommands.Add(CheckpointCommand.Create());
root.Subcommands.Add(RestoreCommand.Create());
root.Subcommands.Add(ShowCommand.Create());
ParseResult parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"ckpt: {error.Message}");
    return 2; // usage (docs/ARCHITECTURE.md exit codes)
}
int exitCode = parsed.Invoke();
StageProfile.Mark("exit");
return exitCode;
