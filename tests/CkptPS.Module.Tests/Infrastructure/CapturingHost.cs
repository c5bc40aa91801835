using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
using System.Text;

namespace CkptPS.Module.Tests.Infrastructure;

/// <summary>
/// A PowerShell host that records what the engine writes to it: formatted output (Out-Default),
/// "What if:" lines, progress records and prompts. Prompts are answered from <see cref="ChoiceAnswer"/>.
/// </summary>
internal sealed partial class CapturingHost : PSHost
{
    private readonly CapturingUserInterface ui = new();
    public override CultureInfo CurrentCulture => CultureInfo.InvariantCulture;
    public override CultureInfo CurrentUICulture => CultureInfo.InvariantCulture;
    public override Guid InstanceId { get; } = Guid.NewGuid();
    public override string Name => "CkptPS.Tests";
    public override Version Version => new(1, 0);
    public override PSHostUserInterface UI => ui;
    public string Output => ui.Text.ToString();
    public List<ProgressRecord> Progress => ui.Progress;
    public List<string> Prompts => ui.Prompts;
    /// <summary>The label of the choice every prompt answers, e.g. "&amp;No".</summary>
    public string ChoiceAnswer { get => ui.ChoiceAnswer; set => ui.ChoiceAnswer = value; }
    public void ClearOutput() => ui.Text.Clear();

    public override void EnterNestedPrompt() => throw new NotSupportedException();
    public override void ExitNestedPrompt() => throw new NotSupportedException();
    public override void NotifyBeginApplication() { }
    public override void NotifyEndApplication() { }
    public override void SetShouldExit(int exitCode) { }

    [System.Text.RegularExpressions.GeneratedRegex(@"\x1b\[[0-9;]*m")]
    private static partial System.Text.RegularExpressions.Regex AnsiEscape();

    private sealed class CapturingUserInterface : PSHostUserInterface
    {
        public StringBuilder Text { get; } = new();
        public List<ProgressRecord> Progress { get; } = [];
        public List<string> Prompts { get; } = [];
        public string ChoiceAnswer { get; set; } = "&No";
        public override PSHostRawUserInterface RawUI { get; } = new FixedSizeRawUserInterface();

        // Like a console that does not support VT sequences: table headers arrive styled.
        public override void Write(string value) { lock (Text) Text.Append(AnsiEscape().Replace(value, "")); }
        public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Write(value);
        public override void WriteLine(string value) => Write(value + "\n");
        public override void WriteErrorLine(string value) => WriteLine(value);
        public override void WriteDebugLine(string message) => WriteLine("DEBUG: " + message);
        public override void WriteVerboseLine(string message) => WriteLine("VERBOSE: " + message);
        public override void WriteWarningLine(string message) => WriteLine("WARNING: " + message);
        public override void WriteProgress(long sourceId, ProgressRecord record) { lock (Progress) Progress.Add(record); }
        public override string ReadLine() => throw new NotSupportedException("tests do not read input");
        public override SecureString ReadLineAsSecureString() => throw new NotSupportedException();
        public override Dictionary<string, PSObject> Prompt(string caption, string message, System.Collections.ObjectModel.Collection<FieldDescription> descriptions) =>
            throw new NotSupportedException();
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) =>
            throw new NotSupportedException();
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName,
            PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => throw new NotSupportedException();

        public override int PromptForChoice(string caption, string message, System.Collections.ObjectModel.Collection<ChoiceDescription> choices, int defaultChoice)
        {
            Prompts.Add($"{caption}: {message}");
            for (int i = 0; i < choices.Count; i++)
            {
                if (choices[i].Label == ChoiceAnswer) return i;
            }
            throw new InvalidOperationException($"The prompt '{message}' has no choice '{ChoiceAnswer}'.");
        }
    }

    /// <summary>A 160-column "console" so table views are laid out deterministically.</summary>
    private sealed class FixedSizeRawUserInterface : PSHostRawUserInterface
    {
        public override ConsoleColor BackgroundColor { get; set; } = ConsoleColor.Black;
        public override ConsoleColor ForegroundColor { get; set; } = ConsoleColor.Gray;
        public override Size BufferSize { get; set; } = new(160, 9999);
        public override Coordinates CursorPosition { get; set; }
        public override int CursorSize { get; set; } = 1;
        public override bool KeyAvailable => false;
        public override Size MaxPhysicalWindowSize => new(160, 50);
        public override Size MaxWindowSize => new(160, 50);
        public override Coordinates WindowPosition { get; set; }
        public override Size WindowSize { get; set; } = new(160, 50);
        public override string WindowTitle { get; set; } = "";
        public override void FlushInputBuffer() { }
        public override BufferCell[,] GetBufferContents(Rectangle rectangle) => throw new NotSupportedException();
        public override KeyInfo ReadKey(ReadKeyOptions options) => throw new NotSupportedException();
        public override void ScrollBufferContents(Rectangle source, Coordinates destination, Rectangle clip, BufferCell fill) { }
        public override void SetBufferContents(Coordinates origin, BufferCell[,] contents) { }
        public override void SetBufferContents(Rectangle rectangle, BufferCell fill) { }
    }
}
