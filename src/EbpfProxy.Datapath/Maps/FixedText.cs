using System.Text;

namespace EbpfProxy.Datapath.Maps;

/// <summary>
/// Text in a fixed-size C char array: UTF-8, NUL-padded and always NUL-terminated. A text too long
/// for the field is cut at a character boundary and ends in "...", so what is read back is exactly
/// <see cref="Fit"/> of what was written (a writer compares with that to write nothing twice).
/// </summary>
public static class FixedText
{
    public const string Ellipsis = "...";

    /// <summary>The text as a field of <paramref name="fieldBytes"/> bytes holds it (NULs dropped: C strings end there).</summary>
    public static string Fit(string text, int fieldBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(fieldBytes, Ellipsis.Length + 1);
        if (text.Contains('\0'))
            text = text.Replace("\0", "", StringComparison.Ordinal);
        int room = fieldBytes - 1; // the terminating NUL
        if (Encoding.UTF8.GetByteCount(text) <= room)
            return text;
        room -= Ellipsis.Length;
        var sb = new StringBuilder();
        int used = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (used + rune.Utf8SequenceLength > room)
                break;
            used += rune.Utf8SequenceLength;
            sb.Append(rune.ToString());
        }
        return sb.Append(Ellipsis).ToString();
    }

    /// <summary>Writes <see cref="Fit"/> of <paramref name="text"/> into <paramref name="field"/>, NUL-padding the rest.</summary>
    public static void Write(string text, Span<byte> field)
    {
        field.Clear();
        Encoding.UTF8.GetBytes(Fit(text, field.Length), field);
    }

    /// <summary>The text up to the first NUL (invalid UTF-8 is shown as U+FFFD, never thrown on).</summary>
    public static string Read(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }
}
