namespace LibBpf.Net.Tests;

/// <summary>tc and XDP attachment on a veth pair inside a namespace created by the test.</summary>
public class AttachTests
{
    [PrivilegedFact]
    public void Tc_AttachQueryReplaceDetach()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfProgram count = obj.GetProgram("tc_count");
        BpfProgram pass = obj.GetProgram("tc_pass");
        uint countId = count.GetInfo().Id;
        uint passId = pass.GetInfo().Id;
        using var ns = new NetNs();

        string filters = ns.Run(() =>
        {
            int ifindex = TestNative.IfIndex("veth0");
            Assert.True(TcHook.EnsureClsact(ifindex));
            Assert.False(TcHook.EnsureClsact(ifindex));
            Assert.Null(TcHook.Query(ifindex, TcAttachPoint.Ingress, 1, 1));

            TcAttachment attachment = TcHook.Attach(ifindex, TcAttachPoint.Ingress, count, handle: 1, priority: 1);
            Assert.Equal(new TcAttachment(ifindex, TcAttachPoint.Ingress, 1, 1, countId), attachment);
            Assert.Equal(new TcFilterInfo(1, 1, countId), TcHook.Query(ifindex, TcAttachPoint.Ingress, 1, 1));
            Assert.Null(TcHook.Query(ifindex, TcAttachPoint.Egress, 1, 1));

            var exists = Assert.Throws<BpfException>(() => TcHook.Attach(ifindex, TcAttachPoint.Ingress, pass, 1, 1));
            Assert.Equal(17, exists.Errno);
            Assert.Equal("bpf_tc_attach", exists.Operation);
            Assert.Equal($"veth0 (ifindex {ifindex}) ingress", exists.ObjectName);

            TcHook.Attach(ifindex, TcAttachPoint.Ingress, pass.Fd, 1, 1, replace: true);
            Assert.Equal(passId, TcHook.Query(ifindex, TcAttachPoint.Ingress, 1, 1)?.ProgramId);

            TcAttachment egress = TcHook.Attach(ifindex, TcAttachPoint.Egress, count, handle: 0, priority: 0);
            Assert.NotEqual(0u, egress.Handle);
            Assert.NotEqual(0u, egress.Priority);
            Assert.Equal(countId, TcHook.Query(ifindex, TcAttachPoint.Egress, egress.Handle, egress.Priority)?.ProgramId);

            string shown = ns.Exec("tc filter show dev veth0 ingress");
            Assert.True(TcHook.Detach(ifindex, TcAttachPoint.Ingress, 1, 1));
            Assert.False(TcHook.Detach(ifindex, TcAttachPoint.Ingress, 1, 1));
            Assert.Null(TcHook.Query(ifindex, TcAttachPoint.Ingress, 1, 1));
            Assert.True(TcHook.Detach(egress));

            Assert.True(TcHook.DestroyClsact(ifindex));
            Assert.False(TcHook.DestroyClsact(ifindex));
            return shown;
        });

        Assert.Contains("tc_pass", filters);
        Assert.Contains("direct-action", filters);
        Assert.Contains($"id {passId}", filters);
    }

    [PrivilegedFact]
    public void Tc_SeesTraffic_AndOutlivesTheObject()
    {
        using var ns = new NetNs();
        using BpfObject obj = TestObjects.LoadProgs();
        uint progId = obj.GetProgram("tc_count").GetInfo().Id;
        var events = new List<byte[]>();
        byte[] frame = TestObjects.Frame(60);
        int ifindex;
        using (var ring = new BpfRingBuffer(obj.GetMap("events").Map, r => events.Add(r.ToArray())))
        {
            ifindex = ns.Run(() =>
            {
                int veth1 = TestNative.IfIndex("veth1");
                TcHook.EnsureClsact(veth1);
                TcHook.Attach(veth1, TcAttachPoint.Ingress, obj.GetProgram("tc_count"), 1, 1);
                TestNative.SendFrames(TestNative.IfIndex("veth0"), frame, 3);
                return veth1;
            });

            // Frames sent on veth0 enter veth1's ingress hook.
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (events.Count < 3 && DateTime.UtcNow < deadline)
            {
                ring.Poll(100);
            }
        }
        Assert.Equal(3, events.Count);
        Assert.All(events, e => Assert.Equal(60u, BitConverter.ToUInt32(e, 0)));
        Assert.All(events, e => Assert.Equal((uint)ifindex, BitConverter.ToUInt32(e, 4)));
        Assert.All(events, e => Assert.Equal(frame.AsSpan(0, 8).ToArray(), e.AsSpan(8, 8).ToArray()));
        PcpuValue[] stats = obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>().Lookup(0)!;
        Assert.Equal(3, stats.Sum(v => (long)v.Packets));

        // Closing the object does not detach: the filter keeps the program loaded.
        obj.Dispose();
        ns.Run(() =>
        {
            Assert.Equal(progId, TcHook.Query(ifindex, TcAttachPoint.Ingress, 1, 1)?.ProgramId);
            using (BpfProgram stillLoaded = BpfProgram.FromId(progId))
            {
                Assert.Equal("tc_count", stillLoaded.Name);
            }
            Assert.True(TcHook.DestroyClsact(ifindex));
            Assert.Null(TcHook.Query(ifindex, TcAttachPoint.Ingress, 1, 1));
        });
    }

    [PrivilegedFact]
    public void Tcx_LinkSeesTraffic_OutlivesItsFdWhenPinned_AndGoesDefunctWithTheInterface()
    {
        using var ns = new NetNs();
        using var fs = new TempBpfFs();
        using BpfObject obj = TestObjects.LoadProgs();
        BpfProgram count = obj.GetProgram("tc_count");
        uint countId = count.GetInfo().Id;
        var pin = Path.Combine(fs.Path, "tcx_ingress");
        var events = new List<byte[]>();
        using var ring = new BpfRingBuffer(obj.GetMap("events").Map, r => events.Add(r.ToArray()));
        int veth1 = ns.Run(() =>
        {
            int ifindex = TestNative.IfIndex("veth1");
            using (var link = BpfLink.AttachTcx(count, ifindex, TcAttachPoint.Ingress))
            {
                var info = link.GetInfo();
                Assert.Equal((BpfLinkInfo.TcxType, countId, ifindex, BpfAttachType.TcxIngress), (info.Type, info.ProgramId, info.TcxIfindex, info.TcxAttachType));
                link.Pin(pin);
            }
            // No clsact qdisc: tcx needs none.
            Assert.DoesNotContain("clsact", ns.Exec("tc qdisc show dev veth1"));
            TestNative.SendFrames(TestNative.IfIndex("veth0"), TestObjects.Frame(60), 2);
            return ifindex;
        });
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (events.Count < 2 && DateTime.UtcNow < deadline)
            ring.Poll(100);
        Assert.Equal(2, events.Count); // the pin kept it attached after the fd closed
        Assert.All(events, e => Assert.Equal((uint)veth1, BitConverter.ToUInt32(e, 4)));

        // The interface goes: the pinned link stays but is defunct (ifindex 0).
        ns.Exec("ip link del veth1");
        using (var pinned = BpfLink.OpenPinned(pin))
            Assert.Equal(0, pinned.GetInfo().TcxIfindex);
        File.Delete(pin);
    }

    [PrivilegedFact]
    public void Xdp_AttachQueryDetach()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfProgram xdp = obj.GetProgram("xdp_pass");
        uint id = xdp.GetInfo().Id;
        using var ns = new NetNs();

        ns.Run(() =>
        {
            int ifindex = TestNative.IfIndex("veth1");
            Assert.Equal(0u, Xdp.QueryProgramId(ifindex, XdpFlags.SkbMode));

            Xdp.Attach(ifindex, xdp, XdpFlags.SkbMode);
            Assert.Equal(id, Xdp.QueryProgramId(ifindex, XdpFlags.SkbMode));
            Assert.Equal(0u, Xdp.QueryProgramId(ifindex, XdpFlags.DrvMode));

            var busy = Assert.Throws<BpfException>(() => Xdp.Attach(ifindex, xdp.Fd, XdpFlags.SkbMode | XdpFlags.UpdateIfNoExist));
            Assert.Equal("bpf_xdp_attach", busy.Operation);
            Assert.Equal($"veth1 (ifindex {ifindex})", busy.ObjectName);

            // Real traffic through the generic XDP hook.
            TestNative.SendFrames(TestNative.IfIndex("veth0"), TestObjects.Frame(), 4);
            SpinWait.SpinUntil(() => obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>().Lookup(1)!.Sum(v => (long)v.Packets) >= 4, 5000);

            Xdp.Detach(ifindex, XdpFlags.SkbMode);
            Assert.Equal(0u, Xdp.QueryProgramId(ifindex, XdpFlags.SkbMode));

            Xdp.Attach(ifindex, xdp, XdpFlags.DrvMode); // veth has native XDP
            Assert.Equal(id, Xdp.QueryProgramId(ifindex, XdpFlags.DrvMode));
            Assert.Equal(id, Xdp.QueryProgramId(ifindex));
            Xdp.Detach(ifindex, XdpFlags.DrvMode);
            Assert.Equal(0u, Xdp.QueryProgramId(ifindex));
        });

        Assert.Equal(4, obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>().Lookup(1)!.Sum(v => (long)v.Packets));
    }
}
