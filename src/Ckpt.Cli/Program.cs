using System.CommandLine;
using Ckpt.Cli;
using Ckpt.Engine.Restore;

StageProfile.Mark("main");

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
