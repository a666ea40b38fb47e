using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace LibBpf.Net;

/// <summary>libbpf's message levels (<c>enum libbpf_print_level</c>).</summary>
public enum LibBpfLogLevel
{
    /// <summary><c>LIBBPF_WARN</c> (includes verifier logs of failed loads).</summary>
    Warn = 0,
    /// <summary><c>LIBBPF_INFO</c>.</summary>
    Info = 1,
    /// <summary><c>LIBBPF_DEBUG</c> (verbose).</summary>
    Debug = 2,
}

/// <summary>
/// Routes libbpf's output (<c>libbpf_set_print</c>, process-global) to a managed handler. Once this
/// binding is used, libbpf no longer writes to stderr: without a handler, messages are only kept for the
/// exceptions of the operation that produced them (e.g. the verifier log of <see cref="BpfObject.Load"/>).
/// </summary>
public static unsafe class LibBpfLog
{
    private const int FormatBufferSize = 64 * 1024;
    private const int MaxMessageSize = 16 * 1024 * 1024;

    private static volatile Action<LibBpfLogLevel, string>? s_handler;
    private static volatile int s_handlerMaxLevel = (int)LibBpfLogLevel.Info;
    private static int s_installed;

    [ThreadStatic]
    private static LogCapture? t_capture;

    [ThreadStatic]
    private static byte[]? t_formatBuffer;

    /// <summary>
    /// Sets (or with null, clears) the handler receiving libbpf messages up to <paramref name="maxLevel"/>.
    /// The handler runs on the thread calling into libbpf and must not throw (exceptions are swallowed).
    /// Messages have their trailing newline removed.
    /// </summary>
    public static void SetHandler(Action<LibBpfLogLevel, string>? handler, LibBpfLogLevel maxLevel = LibBpfLogLevel.Info)
    {
        s_handlerMaxLevel = (int)maxLevel;
        s_handler = handler;
        EnsureInstalled();
    }

    internal static void EnsureInstalled()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0)
        {
            Interop.LibBpf.SetPrint(&OnPrint);
        }
    }

    /// <summary>Captures this thread's libbpf messages up to <paramref name="maxLevel"/> until disposed.</summary>
    internal static LogCapture BeginCapture(LibBpfLogLevel maxLevel)
    {
        EnsureInstalled();
        var capture = new LogCapture(t_capture, maxLevel);
        t_capture = capture;
        return capture;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnPrint(int level, byte* format, nint args)
    {
        try
        {
            Action<LibBpfLogLevel, string>? handler = level <= s_handlerMaxLevel ? s_handler : null;
            LogCapture? capture = t_capture;
            if (capture is not null && level > (int)capture.MaxLevel)
            {
                capture = null;
            }
            if (handler is null && capture is null)
            {
                return 0;
            }

            string message = Format(format, args);
            capture?.Append(message);
            handler?.Invoke((LibBpfLogLevel)level, message.TrimEnd('\n'));
        }
        catch
        {
            // Never let an exception unwind into libbpf.
        }
        return 0;
    }

    private static string Format(byte* format, nint args)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            // va_list layout is ABI specific: only x86_64's is handled; give the raw format string.
            return Marshal.PtrToStringUTF8((nint)format) ?? string.Empty;
        }

        // On x86_64 a va_list parameter is a pointer to a 24-byte __va_list_tag that vsnprintf advances.
        // Formatting from a copy (what va_copy does) leaves the original intact for a second, larger attempt.
        byte* tag = stackalloc byte[Interop.Libc.VaListTagSize];
        byte[] buffer = t_formatBuffer ??= new byte[FormatBufferSize];
        Buffer.MemoryCopy((void*)args, tag, Interop.Libc.VaListTagSize, Interop.Libc.VaListTagSize);
        int length;
        fixed (byte* p = buffer)
        {
            length = Interop.Libc.VsnPrintf(p, (nuint)buffer.Length, format, (nint)tag);
        }
        if (length < 0)
        {
            return Marshal.PtrToStringUTF8((nint)format) ?? string.Empty;
        }
        if (length < buffer.Length)
        {
            return Encoding.UTF8.GetString(buffer, 0, length);
        }

        int size = Math.Min(length + 1, MaxMessageSize);
        byte[] large = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            Buffer.MemoryCopy((void*)args, tag, Interop.Libc.VaListTagSize, Interop.Libc.VaListTagSize);
            fixed (byte* p = large)
            {
                length = Interop.Libc.VsnPrintf(p, (nuint)size, format, (nint)tag);
            }
            return Encoding.UTF8.GetString(large, 0, Math.Clamp(length, 0, size - 1));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(large);
        }
    }

    /// <summary>The tail (last ~32 KiB) of this thread's libbpf output during one operation.</summary>
    internal sealed class LogCapture : IDisposable
    {
        private const int Limit = 32 * 1024;
        private readonly LogCapture? _previous;
        private readonly StringBuilder _text = new();
        private bool _truncated;

        internal LogCapture(LogCapture? previous, LibBpfLogLevel maxLevel)
        {
            _previous = previous;
            MaxLevel = maxLevel;
        }

        internal LibBpfLogLevel MaxLevel { get; }

        internal void Append(string message)
        {
            _text.Append(message);
            if (_text.Length > 2 * Limit)
            {
                _text.Remove(0, _text.Length - Limit);
                _truncated = true;
            }
        }

        /// <summary>The captured text, or null when nothing was logged.</summary>
        internal string? GetText()
        {
            if (_text.Length == 0)
            {
                return null;
            }
            if (_text.Length <= Limit && !_truncated)
            {
                return _text.ToString();
            }
            return "[... truncated ...]\n" + _text.ToString(_text.Length - Math.Min(_text.Length, Limit), Math.Min(_text.Length, Limit));
        }

        public void Dispose()
        {
            if (t_capture == this)
            {
                t_capture = _previous;
            }
        }
    }
}
