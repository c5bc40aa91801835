// What nearly every test class of this project uses: xUnit, the image model, and the helpers that start
// workloads and run the engine (CheckpointTestSupport, ThreadTestSupport).
global using Ckpt.Image.Model;
global using Ckpt.Image.Records;
global using Xunit;
global using static Ckpt.Engine.Tests.CheckpointTestSupport;
global using static Ckpt.Engine.Tests.ThreadTestSupport;
