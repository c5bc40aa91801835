namespace Ckpt.Engine.Checkpoint;

/// <summary>Hands out the image's object references: 1, 2, 3 ... (0 means "none").</summary>
public sealed class ObjRefs
{
    private int _last;

    public int Next() => ++_last;
}
