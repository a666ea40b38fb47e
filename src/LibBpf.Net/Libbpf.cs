namespace LibBpf.Net;

/// <summary>Process-wide libbpf facts.</summary>
public static class Libbpf
{
    private static int s_numPossibleCpus;

    /// <summary>Number of possible CPUs (<c>libbpf_num_possible_cpus</c>): the element count of per-CPU map values.</summary>
    public static int NumPossibleCpus
    {
        get
        {
            int n = s_numPossibleCpus;
            if (n == 0)
            {
                s_numPossibleCpus = n = Interop.LibBpf.NumPossibleCpus();
            }
            return n;
        }
    }

    /// <summary>The loaded libbpf's version, e.g. "v1.1".</summary>
    public static string Version => Interop.LibBpf.VersionString();
}
