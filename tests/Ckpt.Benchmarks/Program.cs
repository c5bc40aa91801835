using BenchmarkDotNet.Running;

// dotnet run -c Release --project tests/Ckpt.Benchmarks -- --filter '*'
// (see docs/benchmarks.md for the exact command and the measured table)
BenchmarkSwitcher.FromAssembly(typeof(Ckpt.Benchmarks.SerializerBenchmarks).Assembly).Run(args);
