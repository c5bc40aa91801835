using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Tests;

/// <summary>
/// <see cref="ProcText"/> reads /proc files without .NET's file machinery: it must give what File.ReadAllText and
/// File.ReadAllLines give, and fail as they fail (callers tell a process gone from a file not ours by the exception type).
/// </summary>
public sealed class ProcTextTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-proctext-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("")]
    [InlineData("one line without an end")]
    [InlineData("a\nb\n")]
    [InlineData("a\r\nb\rc\n\nd")]
    [InlineData("\n\n")]
    [InlineData("ends with a carriage return\r")]
    [InlineData("name: caf\u00e9 (deleted)\n")]
    public void Lines_and_text_are_those_of_File_ReadAllLines_and_ReadAllText(string contents)
    {
        string path = Path.Combine(_directory, "file");
        File.WriteAllText(path, contents);
        Assert.Equal(File.ReadAllLines(path), ProcText.ReadAllLines(path));
        Assert.Equal(File.ReadAllText(path), ProcText.ReadAllText(path));
        Assert.Equal(File.ReadAllBytes(path), ProcText.ReadAllBytes(path));
    }

    [Fact]
    public void A_file_larger_than_the_first_buffer_is_read_whole()
    {
        string path = Path.Combine(_directory, "large");
        string contents = string.Concat(Enumerable.Range(0, 5000).Select(i => $"line {i}\n"));
        File.WriteAllText(path, contents);
        Assert.Equal(contents, ProcText.ReadAllText(path));
        Assert.Equal(File.ReadAllLines(path), ProcText.ReadAllLines(path));
    }

    [Fact]
    public void A_proc_file_reads_as_with_File()
    {
        // /proc/self/limits does not change while the test runs.
        Assert.Equal(File.ReadAllLines("/proc/self/limits"), ProcText.ReadAllLines("/proc/self/limits"));
    }

    [Fact]
    public void Failures_are_the_exceptions_File_throws()
    {
        int gone = GoneProcessId();
        Assert.Equal(Record(() => File.ReadAllText($"/proc/{gone}/status")).GetType(), Record(() => ProcText.ReadAllText($"/proc/{gone}/status")).GetType());
        string missing = Path.Combine(_directory, "missing");
        Assert.Equal(Record(() => File.ReadAllLines(missing)).GetType(), Record(() => ProcText.ReadAllLines(missing)).GetType());
        Assert.Null(ProcText.ReadAllTextIfExists(missing));
        Assert.IsType<DirectoryNotFoundException>(Record(() => ProcText.ListNumbers($"/proc/{gone}/task")));
    }

    [Fact]
    public void The_numeric_entries_of_a_proc_directory_are_listed()
    {
        List<int> tids = ProcText.ListNumbers("/proc/self/task");
        Assert.Contains(Environment.ProcessId, tids);
        Assert.Equal(Directory.GetDirectories("/proc/self/task").Select(d => int.Parse(Path.GetFileName(d))).Order(), tids.Order());
        Assert.Contains(Environment.ProcessId, ProcText.ListNumbers("/proc"));
    }

    private static Exception Record(Action action) => Assert.ThrowsAny<Exception>(action);

    // A pid with no process now: one past the highest in use, below pid_max.
    private static int GoneProcessId()
    {
        int candidate = Directory.GetDirectories("/proc").Select(d => int.TryParse(Path.GetFileName(d), out int pid) ? pid : 0).Max() + 1;
        while (Directory.Exists($"/proc/{candidate}")) candidate++;
        return candidate;
    }
}
