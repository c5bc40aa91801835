namespace CkptPS; internal static class ModuleAssembly { }
