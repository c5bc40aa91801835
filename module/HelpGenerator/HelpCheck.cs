namespace CkptPS.HelpGenerator;

/// <summary>
/// What keeps the help complete and the prose true to the cmdlets: every cmdlet has a synopsis, a
/// description and an example, every parameter (WhatIf and Confirm included) and every declared
/// output type is described, and the prose names no cmdlet, parameter or output type that does not exist.
/// </summary>
public static class HelpCheck
{
    public static IReadOnlyList<string> Problems(IReadOnlyList<CmdletMetadata> cmdlets, IReadOnlyList<CommandHelp> prose)
    {
        var problems = new List<string>();
        foreach (CommandHelp help in prose)
        {
            problems.AddRange(help.Problems);
            if (help.Name.Length != 0 && help.File != help.Name + ".md")
                problems.Add($"{help.File}: describes {help.Name}, so it must be named {help.Name}.md");
            if (help.Name.Length != 0 && cmdlets.All(c => c.Name != help.Name))
                problems.Add($"{help.File}: there is no cmdlet {help.Name} in the module");
        }
        foreach (var duplicate in prose.GroupBy(h => h.Name).Where(g => g.Key.Length != 0 && g.Count() > 1))
            problems.Add($"{duplicate.Key} is described by {string.Join(" and ", duplicate.Select(h => h.File))}");

        foreach (CmdletMetadata cmdlet in cmdlets)
        {
            CommandHelp? help = prose.FirstOrDefault(h => h.Name == cmdlet.Name);
            string file = help?.File ?? cmdlet.Name + ".md";
            if (help is null)
            {
                problems.Add($"{file}: missing: {cmdlet.Name} ({cmdlet.ClassName}) has no help");
                continue;
            }
            if (help.Synopsis.Count == 0) problems.Add($"{file}: {cmdlet.Name} has no ## SYNOPSIS");
            if (help.Description.Count == 0) problems.Add($"{file}: {cmdlet.Name} has no ## DESCRIPTION");
            if (help.Examples.Count == 0) problems.Add($"{file}: {cmdlet.Name} has no example under ## EXAMPLES");
            foreach (HelpExample example in help.Examples)
            {
                if (example.Code.Trim().Length == 0) problems.Add($"{file}: example '{example.Title}' has no code block");
                if (example.Remarks.Count == 0) problems.Add($"{file}: example '{example.Title}' has no remarks");
            }
            foreach (CmdletParameter parameter in cmdlet.Parameters)
            {
                if (!help.Parameters.TryGetValue(parameter.Name, out var text) || text.Count == 0)
                    problems.Add($"{file}: parameter -{parameter.Name} of {cmdlet.Name} has no description under ## PARAMETERS");
            }
            foreach (string name in help.Parameters.Keys.Where(n => cmdlet.Find(n) is null))
                problems.Add($"{file}: describes -{name}, which {cmdlet.Name} does not have");
            foreach (string type in cmdlet.OutputTypes.Where(t => help.Outputs.All(o => o.TypeName != t)))
                problems.Add($"{file}: output type {type} ([OutputType] of {cmdlet.Name}) has no note under ## OUTPUTS");
            foreach (HelpTypeNote output in help.Outputs.Where(o => o.TypeName != "None" && !cmdlet.OutputTypes.Contains(o.TypeName)))
                problems.Add($"{file}: describes output type {output.TypeName}, which is not in the [OutputType] of {cmdlet.Name}");
            foreach (HelpTypeNote note in help.Inputs.Concat(help.Outputs).Where(n => n.Description.Count == 0))
                problems.Add($"{file}: type {note.TypeName} has no description");
        }
        return problems;
    }
}
