namespace CkptPS.HelpGenerator;

public sealed record HelpExample(string Title, string Code, IReadOnlyList<string> Remarks);

/// <summary>A described type: an input or an output of a cmdlet.</summary>
public sealed record HelpTypeNote(string TypeName, IReadOnlyList<string> Description);

public sealed record HelpLink(string Text, string Uri);

/// <summary>
/// The prose of one cmdlet, from module/help/&lt;Cmdlet-Name&gt;.md in the layout platyPS uses:
/// # Name, ## SYNOPSIS, ## DESCRIPTION, ## EXAMPLES (### title, a fenced code block, remarks),
/// ## PARAMETERS (### -Name, its description), ## INPUTS / ## OUTPUTS (### type, its description),
/// ## NOTES, ## RELATED LINKS. Paragraphs are separated by blank lines; their text is taken as
/// written (no markdown rendering: Get-Help shows plain text). The metadata platyPS would put in
/// ## SYNTAX and in each parameter's yaml block comes from the cmdlet itself, so those are ignored
/// when present.
/// </summary>
public sealed class CommandHelp
{
    public required string File { get; init; }
    public required string Name { get; init; }
    public IReadOnlyList<string> Synopsis { get; init; } = [];
    public IReadOnlyList<string> Description { get; init; } = [];
    public IReadOnlyList<HelpExample> Examples { get; init; } = [];
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Parameters { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
    public IReadOnlyList<HelpTypeNote> Inputs { get; init; } = [];
    public IReadOnlyList<HelpTypeNote> Outputs { get; init; } = [];
    public IReadOnlyList<string> Notes { get; init; } = [];
    public IReadOnlyList<HelpLink> Links { get; init; } = [];
    /// <summary>What the file has that this reader does not understand (unknown sections, text outside them).</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    public static readonly string[] KnownSections =
        ["SYNOPSIS", "SYNTAX", "DESCRIPTION", "EXAMPLES", "PARAMETERS", "INPUTS", "OUTPUTS", "NOTES", "RELATED LINKS"];

    /// <summary>Every *.md file of a folder but README.md, one per cmdlet, sorted by name.</summary>
    public static IReadOnlyList<CommandHelp> ReadFolder(string folder) =>
        Directory.EnumerateFiles(folder, "*.md")
            .Where(f => !Path.GetFileName(f).Equals("README.md", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .Select(Read)
            .ToList();

    public static CommandHelp Read(string path) => Parse(System.IO.File.ReadAllText(path), Path.GetFileName(path));

    public static CommandHelp Parse(string markdown, string file)
    {
        var problems = new List<string>();
        var lines = markdown.Replace("\r\n", "\n").Split('\n').ToList();
        int start = 0;
        if (lines.Count > 0 && lines[0].Trim() == "---")   // yaml front matter
        {
            int end = lines.FindIndex(1, l => l.Trim() == "---");
            start = end < 0 ? lines.Count : end + 1;
        }

        // Split into # title, ## sections and ### subsections; headings inside code fences are code.
        string? name = null;
        var sections = new List<Section>();
        Section? section = null;
        Block? block = null;
        bool inFence = false;
        for (int i = start; i < lines.Count; i++)
        {
            string line = lines[i];
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal)) inFence = !inFence;
            else if (!inFence && line.StartsWith("# ", StringComparison.Ordinal))
            {
                if (name is not null) problems.Add($"{file}:{i + 1}: a second title '{line}'");
                name = line[2..].Trim();
                section = null; block = null;
                continue;
            }
            else if (!inFence && line.StartsWith("## ", StringComparison.Ordinal))
            {
                section = new Section(line[3..].Trim(), i + 1);
                sections.Add(section);
                block = section.Body;
                continue;
            }
            else if (!inFence && line.StartsWith("### ", StringComparison.Ordinal) && section is not null)
            {
                block = new Block(line[4..].Trim(), i + 1);
                section.Subsections.Add(block);
                continue;
            }
            if (block is not null) block.Lines.Add(line);
            else if (line.Trim().Length != 0) problems.Add($"{file}:{i + 1}: text outside any section");
        }
        if (inFence) problems.Add($"{file}: a code fence is not closed");
        if (name is null) problems.Add($"{file}: no '# <Cmdlet-Name>' title");

        foreach (Section s in sections.Where(s => !KnownSections.Contains(s.Name)))
        {
            problems.Add($"{file}:{s.Line}: unknown section '## {s.Name}' (known: {string.Join(", ", KnownSections)})");
        }
        foreach (var duplicate in sections.GroupBy(s => s.Name).Where(g => g.Count() > 1))
        {
            problems.Add($"{file}: section '## {duplicate.Key}' appears {duplicate.Count()} times");
        }
        foreach (Section s in sections)
        {
            bool hasSubsections = s.Name is "SYNTAX" or "EXAMPLES" or "PARAMETERS" or "INPUTS" or "OUTPUTS";
            if (!hasSubsections && s.Subsections.Count > 0)
                problems.Add($"{file}:{s.Subsections[0].Line}: '## {s.Name}' has no '###' subsections");
            if (hasSubsections && s.Body.Lines.Any(l => l.Trim().Length != 0))
                problems.Add($"{file}:{s.Line}: text in '## {s.Name}' before its first '###' subsection");
        }
        Section? Get(string sectionName) => sections.FirstOrDefault(s => s.Name == sectionName);
        IReadOnlyList<string> Text(string sectionName) => Get(sectionName) is { } s ? Paragraphs(s.Body.Lines) : [];
        IEnumerable<Block> Subsections(string sectionName) => Get(sectionName)?.Subsections ?? [];

        var parameters = new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (Block parameter in Subsections("PARAMETERS"))
        {
            if (parameter.Title == "CommonParameters") continue;   // platyPS's boilerplate
            if (!parameter.Title.StartsWith('-'))
            {
                problems.Add($"{file}:{parameter.Line}: a parameter heading must be '### -Name', not '### {parameter.Title}'");
                continue;
            }
            if (!parameters.TryAdd(parameter.Title[1..], Paragraphs(WithoutFences(parameter.Lines, out _))))
            {
                problems.Add($"{file}:{parameter.Line}: parameter {parameter.Title} is described twice");
            }
        }

        var examples = new List<HelpExample>();
        foreach (Block example in Subsections("EXAMPLES"))
        {
            var remarks = Paragraphs(WithoutFences(example.Lines, out var code));
            examples.Add(new HelpExample(example.Title, string.Join("\n\n", code), remarks));
        }

        var links = new List<HelpLink>();
        foreach (string line in Get("RELATED LINKS")?.Body.Lines ?? [])
        {
            string text = line.Trim();
            if (text.Length == 0) continue;
            // [text](uri): a relative .md uri names another cmdlet's help, which Get-Help links by name.
            int close = text.IndexOf("](", StringComparison.Ordinal);
            if (text.StartsWith('[') && close > 0 && text.EndsWith(')'))
            {
                string uri = text[(close + 2)..^1];
                links.Add(new HelpLink(text[1..close], uri.Contains("://", StringComparison.Ordinal) ? uri : ""));
            }
            else problems.Add($"{file}: related link '{text}' is not [text](uri)");
        }

        return new CommandHelp
        {
            File = file,
            Name = name ?? "",
            Synopsis = Text("SYNOPSIS"),
            Description = Text("DESCRIPTION"),
            Examples = examples,
            Parameters = parameters,
            Inputs = Subsections("INPUTS").Select(b => new HelpTypeNote(b.Title, Paragraphs(b.Lines))).ToList(),
            Outputs = Subsections("OUTPUTS").Select(b => new HelpTypeNote(b.Title, Paragraphs(b.Lines))).ToList(),
            Notes = Text("NOTES"),
            Links = links,
            Problems = problems,
        };
    }

    /// <summary>Paragraphs: runs of non-blank lines, each joined with single spaces.</summary>
    private static List<string> Paragraphs(IEnumerable<string> lines)
    {
        var paragraphs = new List<string>();
        var current = new List<string>();
        foreach (string line in lines.Append(""))
        {
            if (line.Trim().Length == 0)
            {
                if (current.Count > 0) paragraphs.Add(string.Join(' ', current));
                current.Clear();
            }
            else current.Add(line.Trim());
        }
        return paragraphs;
    }

    /// <summary>The lines outside fenced blocks; the contents of the non-yaml fences go to <paramref name="code"/>.</summary>
    private static List<string> WithoutFences(List<string> lines, out List<string> code)
    {
        var text = new List<string>();
        code = [];
        List<string>? fence = null;
        bool yaml = false;
        foreach (string line in lines)
        {
            string trimmed = line.TrimStart();
            if (trimmed.StartsWith("```", StringComparison.Ordinal))
            {
                if (fence is null)
                {
                    fence = [];
                    yaml = trimmed[3..].Trim() is "yaml" or "yml";
                }
                else
                {
                    if (!yaml) code.Add(string.Join('\n', fence));
                    fence = null;
                }
            }
            else if (fence is not null) fence.Add(line);
            else text.Add(line);
        }
        return text;
    }

    private sealed class Block(string title, int line)
    {
        public string Title { get; } = title;
        public int Line { get; } = line;
        public List<string> Lines { get; } = [];
    }

    private sealed class Section(string name, int line)
    {
        public string Name { get; } = name;
        public int Line { get; } = line;
        public Block Body { get; } = new(name, line);
        public List<Block> Subsections { get; } = [];
    }
}
