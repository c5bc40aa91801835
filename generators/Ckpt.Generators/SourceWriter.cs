using System.Text;

namespace Ckpt.Generators
{
    /// <summary>A minimal indented writer for emitting readable C#.</summary>
    internal sealed class SourceWriter
    {
        private readonly StringBuilder text = new StringBuilder();
        private int depth;

        public void Line(string line = "")
        {
            if (line.Length > 0) text.Append(' ', depth * 4);
            text.Append(line).Append('\n');
        }

        public void Open(string line)
        {
            Line(line);
            Line("{");
            depth++;
        }

        public void Close(string suffix = "")
        {
            depth--;
            Line("}" + suffix);
        }

        public override string ToString() => text.ToString();
    }
}
