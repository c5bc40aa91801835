using System.Text.Json;

namespace CkptPS.Engine;

internal enum EngineEventKind
{
    Progress,
    Result,
    /// <summary>A line on the channel that is not one of the documented JSON objects.</summary>
    Unrecognized,
    /// <summary>Posted once, last: the engine process has exited.</summary>
    Exited,
}

/// <summary>
/// One line of the engine's progress/result channel (docs/ARCHITECTURE.md), or the
/// engine's exit. Fields absent from a line stay null.
/// </summary>
internal sealed record EngineEvent(EngineEventKind Kind)
{
    public string? Phase { get; init; }
    public long? Done { get; init; }
    public long? Total { get; init; }
    public bool Ok { get; init; }
    public int? Pid { get; init; }
    public string? Image { get; init; }
    public long? Bytes { get; init; }
    public string? Category { get; init; }
    public string? Message { get; init; }
    public int? Errno { get; init; }
    /// <summary>With `restore --wait`: how the restored process ended.</summary>
    public int? ExitStatus { get; init; }
    public int ExitCode { get; init; }
    public string? Text { get; init; }

    public static EngineEvent Parse(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return Unrecognized(line);
            var kind = String(root, "event") switch
            {
                "progress" => EngineEventKind.Progress,
                "result" => EngineEventKind.Result,
                _ => EngineEventKind.Unrecognized,
            };
            if (kind == EngineEventKind.Unrecognized) return Unrecognized(line);
            return new EngineEvent(kind)
            {
                Phase = String(root, "phase"),
                Done = Int64(root, "done"),
                Total = Int64(root, "total"),
                Ok = root.TryGetProperty("ok", out var ok) && ok.ValueKind == JsonValueKind.True,
                Pid = (int?)Int64(root, "pid"),
                Image = String(root, "image"),
                Bytes = Int64(root, "bytes"),
                Category = String(root, "category"),
                Message = String(root, "message"),
                Errno = (int?)Int64(root, "errno"),
                ExitStatus = (int?)Int64(root, "exitStatus"),
                Text = line,
            };
        }
        catch (JsonException)
        {
            return Unrecognized(line);
        }
    }

    private static EngineEvent Unrecognized(string line) => new(EngineEventKind.Unrecognized) { Text = line };

    private static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static long? Int64(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number)
            ? number : null;
}
