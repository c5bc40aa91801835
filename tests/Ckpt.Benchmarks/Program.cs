using BenchmarkDotNet.Running;
using Ckpt.Benchmarks;

// dotnet run -c Release --project tests/Ckpt.Benchmarks -- --filter '*'
// dotnet run -c Release --project tests/Ckpt.Benchmarks -- --interleaved 200
// (docs/benchmarks.md has the exact commands and the measured tables)
if (args is ["--interleaved", var rounds])
{
    InterleavedCheck.Run(int.Parse(rounds));
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(SerializerBenchmarks).Assembly).Run(args);
