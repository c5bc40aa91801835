using System.Text;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files;

/// <summary>
/// An anonymous-inode file inspected at checkpoint time whose whole state is one record after its
/// FILE record (an eventfd's counter, a signalfd's mask, a timerfd's timer). The FILE record's path is
/// the /proc link text, e.g. "anon_inode:[eventfd]".
/// </summary>
public sealed record InspectedAnonymousFile<TState>(FileRecord File, string Target, TState State) : IInspectedFile
    where TState : struct, IImageRecord<TState>
{
    public void Write(ImageWriter writer)
    {
        writer.Write(File, Encoding.UTF8.GetBytes(Target));
        writer.Write(State);
    }
}
