using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace CkptPS.Cmdlets;

/// <summary>Completes -Id with the live processes: the pid, shown with its name, matched by either.</summary>
public sealed class ProcessIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName,
        string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string word = wordToComplete.Trim('\'', '"');
        var matches = new List<(int Pid, string Name)>();
        foreach (string directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                continue;
            string? name = ProcessTarget.ReadComm(pid);
            if (name is null) continue; // exited while we looked
            string text = pid.ToString(CultureInfo.InvariantCulture);
            if (word.Length == 0 || text.StartsWith(word, StringComparison.Ordinal)
                || name.StartsWith(word, StringComparison.OrdinalIgnoreCase))
                matches.Add((pid, name));
        }
        return matches.OrderBy(match => match.Pid).Select(match =>
        {
            string text = match.Pid.ToString(CultureInfo.InvariantCulture);
            return new CompletionResult(text, $"{text} {match.Name}", CompletionResultType.ParameterValue, $"{match.Name} ({text})");
        });
    }
}
