using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary>BPF links by fd (<c>bpf_link_create</c>, <c>bpf_link_update</c>): cgroup attachments that outlive the process when pinned.</summary>
    internal static unsafe partial class LibBpf
    {
        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_link_create", SetLastError = true)]
        private static partial int bpf_link_create(int progFd, int targetFd, BpfAttachType attachType, void* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_link_update", SetLastError = true)]
        private static partial int bpf_link_update(int linkFd, int newProgFd, void* opts);

        internal static SafeBpfFdHandle LinkCreate(SafeBpfFdHandle prog, int targetFd, BpfAttachType type, string name)
        {
            int rc;
            using (var lease = new HandleLease(prog))
            {
                rc = bpf_link_create(lease.Fd, targetFd, type, null);
            }
            return SafeBpfFdHandle.FromResult(rc, "bpf_link_create", "program", name);
        }

        internal static void LinkUpdate(SafeBpfFdHandle link, SafeBpfFdHandle prog, string name)
        {
            int rc;
            using (var linkLease = new HandleLease(link))
            using (var progLease = new HandleLease(prog))
            {
                rc = bpf_link_update(linkLease.Fd, progLease.Fd, null);
            }
            ThrowIfNegative(rc, "bpf_link_update", "program", name);
        }
    }
}
