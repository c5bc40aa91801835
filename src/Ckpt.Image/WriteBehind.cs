namespace Ckpt.Image;

/// <summary>How the blocks an <see cref="ImageWriter"/> fills reach its stream.</summary>
public enum WriteBehind
{
    /// <summary>A full block is hashed and written by the thread that filled it.</summary>
    None,

    /// <summary>
    /// A background thread hashes and writes blocks while the caller fills the next ones. At
    /// most two full blocks wait, so memory stays bounded and the caller is held up only when
    /// the device is slower than it.
    /// </summary>
    Pipelined,

    /// <summary>
    /// Blocks stay in memory until <see cref="ImageWriter.StartWriteOut"/> (or the tail): the
    /// caller is never held up by the device, memory grows with the image (linux-cr's deferred
    /// write-out, for a checkpoint whose process must be frozen as briefly as possible).
    /// </summary>
    Deferred,
}
