using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;

namespace Ckpt.Generators.Tests;

/// <summary>The emitted layout must be the one gcc gives the same C struct.</summary>
public class LayoutTests
{
    // Needs implicit padding after every small field, a fixed array and an enum.
    private const string PaddedRecord = """
        namespace Ckpt.Image.Records
        {
            public enum Kind : ushort { A = 1 }
            [ImageRecord(RecordType.Sample)]
            public unsafe partial struct SampleRecord
            {
                public byte Flag;
                public ulong Address;
                public Kind Kind;
                public int Count;
                public fixed byte Name[5];
                public long Position;
                public short Tail;
            }
        }
        """;

    private const string PaddedRecordInC = """
        struct sample { unsigned int type, len; unsigned char flag; unsigned long long address;
            unsigned short kind; int count; unsigned char name[5]; long long position; short tail; }
            __attribute__((aligned(8)));
        """;

    [Fact]
    public void OffsetsAndSizeMatchGcc()
    {
        var (output, diagnostics, run) = GeneratorHarness.Run(PaddedRecord);
        Assert.Empty(diagnostics);
        var generated = run.Results.Single().GeneratedSources.Single(s => s.HintName == "SampleRecord.g.cs").SourceText.ToString();

        var gcc = GccOffsets(PaddedRecordInC, "sample", ["flag", "address", "kind", "count", "name", "position", "tail"]);
        foreach (var (field, offset) in gcc.Offsets)
        {
            var row = Regex.Match(generated, $@"//\s+\S+ {field}(\[\d+\])?;\s+(\d+)\s+\d+");
            Assert.True(row.Success, $"no layout row for {field} in:\n{generated}");
            Assert.Equal(offset, int.Parse(row.Groups[2].Value));
        }
        Assert.Contains($"public const int Size = {gcc.Size};", generated);
        Assert.Equal(56, gcc.Size);
    }

    // Spans cannot cross reflection: a probe compiled with the record converts to arrays.
    private const string Probe = """
        namespace Ckpt.Image.Records
        {
            public static class Probe
            {
                public static byte[] Write(SampleRecord record)
                {
                    var bytes = new byte[SampleRecord.Size];
                    record.WriteTo(bytes, (uint)bytes.Length);
                    return bytes;
                }
                public static SampleRecord Read(byte[] bytes) => SampleRecord.ReadFrom(bytes);
            }
        }
        """;

    [Fact]
    public void GeneratedSerializerWritesFieldsAtTheGccOffsets()
    {
        var (output, diagnostics, _) = GeneratorHarness.Run(PaddedRecord, Probe);
        Assert.Empty(diagnostics);
        var assembly = GeneratorHarness.Load(output);
        var type = assembly.GetType("Ckpt.Image.Records.SampleRecord")!;
        var probe = assembly.GetType("Ckpt.Image.Records.Probe")!;
        var record = Activator.CreateInstance(type)!;
        type.GetField("Flag")!.SetValue(record, (byte)0xAB);
        type.GetField("Address")!.SetValue(record, 0x1122334455667788UL);
        type.GetField("Count")!.SetValue(record, -2);
        type.GetField("Position")!.SetValue(record, 0x0102030405060708L);
        type.GetField("Tail")!.SetValue(record, (short)7);

        var bytes = (byte[])probe.GetMethod("Write")!.Invoke(null, [record])!;

        Assert.Equal(500u, BitConverter.ToUInt32(bytes, 0));
        Assert.Equal(56u, BitConverter.ToUInt32(bytes, 4));
        Assert.Equal(0xAB, bytes[8]);
        Assert.All(bytes[9..16], b => Assert.Equal(0, b)); // implicit padding is zeroed
        Assert.Equal(0x1122334455667788UL, BitConverter.ToUInt64(bytes, 16));
        Assert.Equal(-2, BitConverter.ToInt32(bytes, 28));
        Assert.Equal(0x0102030405060708L, BitConverter.ToInt64(bytes, 40));
        Assert.Equal((short)7, BitConverter.ToInt16(bytes, 48));

        var back = probe.GetMethod("Read")!.Invoke(null, [bytes])!;
        Assert.Equal(0x1122334455667788UL, type.GetField("Address")!.GetValue(back));
        Assert.Equal((short)7, type.GetField("Tail")!.GetValue(back));
    }

    private static (Dictionary<string, int> Offsets, int Size) GccOffsets(string declaration, string name, string[] fields)
    {
        var directory = Directory.CreateTempSubdirectory("ckpt-layout");
        try
        {
            var source = Path.Combine(directory.FullName, "layout.c");
            var prints = string.Join("", fields.Select(f => $"printf(\"{f} %zu\\n\", offsetof(struct {name}, {f}));"));
            File.WriteAllText(source, $"#include <stdio.h>\n#include <stddef.h>\n{declaration}\nint main(void){{{prints}printf(\"size %zu\\n\", sizeof(struct {name}));return 0;}}\n");
            var binary = Path.Combine(directory.FullName, "layout");
            Run("gcc", $"-o {binary} {source}");
            var values = Run(binary, "").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => int.Parse(p[1]));
            var size = values["size"];
            values.Remove("size");
            return (values, size);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static string Run(string program, string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{program} failed: {process.StandardError.ReadToEnd()}");
        return output;
    }
}
