namespace Ckpt.Generators
{
    internal static class Placeholder { }
}
