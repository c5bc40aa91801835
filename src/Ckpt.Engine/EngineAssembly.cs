namespace Ckpt.Engine; internal static class EngineAssembly { }
