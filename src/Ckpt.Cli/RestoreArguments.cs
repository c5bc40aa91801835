namespace Ckpt.Cli;

/// <summary>
/// The options of `ckpt restore` (<see cref="RestoreCommand"/>), and a parser for the plain spellings
/// of them that `ckpt restore` takes before System.CommandLine is set up: building the command tree
/// (options, their help resources read through reflection) is about 2 ms of a lazy restore's return,
/// which should take a few tens. <see cref="TryParse"/> accepts only what it is sure System.CommandLine
/// reads the same way (each option once, spelled out, a value as the next argument) and gives null
/// for everything else: help, a mistake, `--opt=value`, a response file; System.CommandLine then
/// parses the arguments as before, so help and errors are the same words whichever parser ran.
/// RestoreArgumentsTests checks that both read every accepted command line alike.
/// </summary>
internal sealed record RestoreArguments(string Input, bool Wait = false, bool Force = false, bool TrustImage = false,
    int? ProgressFd = null, bool Lazy = false, int? PageServerFd = null, bool ShellTerminal = false)
{
    public static RestoreArguments? TryParse(string[] args)
    {
        if (args.Length < 3 || args[0] != "restore") return null;
        string? input = null;
        int? progressFd = null, pageServerFd = null;
        bool wait = false, force = false, trustImage = false, lazy = false, shellTerminal = false;
        for (int i = 1; i < args.Length; i++)
        {
            string option = args[i];
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            bool ok = option switch
            {
                "--input" => Value(ref input, value, ref i),
                "--progress-fd" => Number(ref progressFd, value, ref i),
                "--page-server-fd" => Number(ref pageServerFd, value, ref i),
                "--wait" => Flag(ref wait),
                "--force" => Flag(ref force),
                "--trust-image" => Flag(ref trustImage),
                "--lazy" => Flag(ref lazy),
                "--shell-terminal" => Flag(ref shellTerminal),
                _ => false,
            };
            if (!ok) return null;
        }
        return input is null ? null : new RestoreArguments(input, wait, force, trustImage, progressFd, lazy, pageServerFd, shellTerminal);
    }

    // A flag given once, without "true"/"false" after it (that spelling is left to System.CommandLine).
    private static bool Flag(ref bool flag)
    {
        if (flag) return false;
        flag = true;
        return true;
    }

    // A value that cannot be read as an option, a response file (@file) or a bool's argument: "-" is
    // standard input; anything else starting with '-' or '@' is left to System.CommandLine.
    private static bool Value(ref string? slot, string? value, ref int i)
    {
        if (slot is not null || value is null || value is "true" or "false") return false;
        if (value != "-" && (value.StartsWith('-') || value.StartsWith('@'))) return false;
        slot = value;
        i++;
        return true;
    }

    private static bool Number(ref int? slot, string? value, ref int i)
    {
        if (slot is not null || value is null || value.Length is 0 or > 9) return false;
        int number = 0;
        foreach (char c in value)
        {
            if (c is < '0' or > '9') return false;
            number = number * 10 + (c - '0');
        }
        slot = number;
        i++;
        return true;
    }
}
