using LibBpf.Net;

namespace EbpfProxy.Datapath.Maps;

/// <summary>Opens a family of maps from their pins under one folder, for readers such as the CLI.</summary>
internal static class PinnedMapSet
{
    /// <summary>
    /// Calls <paramref name="create"/> with a function that opens a pinned map by name; the maps it
    /// opened are handed to it too (the family owns and disposes them). On failure the maps opened
    /// so far are closed.
    /// </summary>
    public static T Open<T>(string pinPath, Func<Func<string, BpfMap>, IReadOnlyList<IDisposable>, T> create)
    {
        var opened = new List<BpfMap>();
        try
        {
            return create(name =>
            {
                var m = BpfMap.OpenPinned(Path.Combine(pinPath, name));
                opened.Add(m);
                return m;
            }, opened);
        }
        catch
        {
            foreach (var m in opened)
                m.Dispose();
            throw;
        }
    }
}
