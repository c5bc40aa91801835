using System.CommandLine;
using Ckpt.Cli;

namespace Ckpt.Engine.Tests;

/// <summary>
/// `ckpt restore` parses its plain command lines itself, before System.CommandLine is built
/// (<see cref="RestoreArguments.TryParse"/>), and leaves every other one to System.CommandLine. Each
/// command line here goes through both: whatever the quick parser accepts, System.CommandLine must
/// accept without an error and read into the same options; what it gives up on goes to
/// System.CommandLine, whose help and errors are then what the user sees.
/// </summary>
public sealed class RestoreArgumentsTests
{
    // Command lines the quick parser must take (the ones the module, the benchmarks and the page server use).
    public static TheoryData<string[]> Plain => new()
    {
        { ["restore", "--input", "/dev/shm/x.img"] },
        { ["restore", "--input", "-"] },
        { ["restore", "--input", "x.img", "--lazy", "--progress-fd", "9"] },
        { ["restore", "--lazy", "--input", "x.img"] },
        { ["restore", "--input", "x.img", "--lazy", "--page-server-fd", "3"] },
        { ["restore", "--input", "x.img", "--wait", "--force", "--trust-image", "--shell-terminal", "--progress-fd", "007"] },
        { ["restore", "--input", "a file=with:odd chars"] },
        { ["restore", "--input", ""] },
        { ["restore", "--input", "show"] },
        { ["restore", "--input", "x.img", "--lazy", "--wait"] }, // accepted by both; Run refuses the pair
    };

    // Command lines it must leave to System.CommandLine (help, mistakes, other spellings).
    public static TheoryData<string[]> Others => new()
    {
        { ["restore"] },
        { ["restore", "--help"] },
        { ["restore", "-h"] },
        { ["restore", "-?"] },
        { ["restore", "--input"] },
        { ["restore", "--lazy"] },
        { ["restore", "--lazy", "--progress-fd", "9"] },
        { ["restore", "--input=x.img"] },
        { ["restore", "--input:x.img"] },
        { ["restore", "--input", "x.img", "--lazy", "true"] },
        { ["restore", "--input", "x.img", "--lazy", "false"] },
        { ["restore", "--input", "x.img", "--lazy", "--lazy"] },
        { ["restore", "--input", "a.img", "--input", "b.img"] },
        { ["restore", "--input", "--lazy"] },
        { ["restore", "--input", "-x"] },
        { ["restore", "--input", "@args.rsp"] },
        { ["restore", "@args.rsp"] },
        { ["restore", "--input", "x.img", "--progress-fd", "-1"] },
        { ["restore", "--input", "x.img", "--progress-fd", "nine"] },
        { ["restore", "--input", "x.img", "--progress-fd", "99999999999"] },
        { ["restore", "--input", "x.img", "--progress-fd"] },
        { ["restore", "--input", "x.img", "--"] },
        { ["restore", "--input", "x.img", "extra"] },
        { ["restore", "--input", "x.img", "--pid", "1"] },
        { ["restore", "--Input", "x.img"] },
        { ["checkpoint", "--pid", "1", "--output", "x.img"] },
        { ["show", "--input", "x.img"] },
        { ["--version"] },
        { [] },
    };

    [Theory]
    [MemberData(nameof(Plain))]
    public void A_plain_command_line_is_read_as_System_CommandLine_reads_it(string[] args)
    {
        RestoreArguments? quick = RestoreArguments.TryParse(args);
        Assert.NotNull(quick);
        Assert.Equal(FullParse(args), quick);
    }

    [Theory]
    [MemberData(nameof(Others))]
    public void Anything_else_is_left_to_System_CommandLine(string[] args)
    {
        Assert.Null(RestoreArguments.TryParse(args));
    }

    [Fact]
    public void Help_and_errors_are_System_CommandLine_s()
    {
        // The command lines that reach System.CommandLine still get its errors (a sample, in its words).
        Assert.Contains(Errors(["restore"]), e => e.Contains("--input") && e.Contains("required"));
        Assert.Contains(Errors(["restore", "--input", "x.img", "--progress-fd", "nine"]), e => e.Contains("nine"));
        Assert.Contains(Errors(["restore", "--input", "x.img", "extra"]), e => e.Contains("extra"));
    }

    private static RestoreArguments FullParse(string[] args)
    {
        var (root, read) = Root();
        ParseResult parsed = root.Parse(args);
        Assert.Empty(parsed.Errors.Select(e => e.Message));
        Assert.Equal("restore", parsed.CommandResult.Command.Name);
        return read(parsed);
    }

    private static IEnumerable<string> Errors(string[] args) => Root().Root.Parse(args).Errors.Select(e => e.Message);

    // The root command as Program.cs builds it.
    private static (RootCommand Root, Func<ParseResult, RestoreArguments> Read) Root()
    {
        var root = new RootCommand("ckpt");
        root.Subcommands.Add(CheckpointCommand.Create());
        root.Subcommands.Add(RestoreCommand.Define(out var read));
        root.Subcommands.Add(ShowCommand.Create());
        return (root, read);
    }
}
