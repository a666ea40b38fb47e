namespace LibBpf.Net.Tests;

public class PinTests
{
    [PrivilegedFact]
    public void BpfFs_IsMounted_DetectsBpffs()
    {
        using var fs = new TempBpfFs();

        Assert.True(BpfFs.IsMounted(fs.Path));
        Assert.False(BpfFs.IsMounted(Path.GetTempPath()));
        Assert.False(BpfFs.IsMounted("/nonexistent-dir"));
    }

    [PrivilegedFact]
    public void Pin_ThenOpenPinned_SeesSameMapAfterObjectIsClosed()
    {
        using var fs = new TempBpfFs();
        string path = fs["lru"];
        uint id;
        using (BpfObject obj = TestObjects.LoadProgs())
        {
            BpfMap<uint, ulong> map = obj.GetMap("lru_hash").As<uint, ulong>();
            map.Update(42, 4242);
            map.Map.Pin(path);
            id = map.Map.Id;
        }

        Assert.True(File.Exists(path));
        using (BpfMap pinned = BpfMap.OpenPinned(path))
        {
            Assert.Equal(id, pinned.Id);
            Assert.Equal(BpfMapType.LruHash, pinned.Type);
            Assert.Equal("lru_hash", pinned.Name);
            BpfMap<uint, ulong> typed = pinned.As<uint, ulong>();
            Assert.True(typed.TryLookup(42, out ulong value));
            Assert.Equal(4242ul, value);

            typed.Update(43, 1);
            pinned.Unpin(path);
            Assert.False(File.Exists(path));
            Assert.True(typed.TryLookup(43, out _)); // still alive through our fd
        }

        var e = Assert.Throws<BpfException>(() => BpfMap.OpenPinned(path));
        Assert.Equal(2, e.Errno);
        Assert.Equal("bpf_obj_get", e.Operation);
        Assert.Equal(path, e.ObjectName);
    }

    [PrivilegedFact]
    public void PinRootPath_SecondObjectReusesPinnedMap()
    {
        using var fs = new TempBpfFs();
        var key = new TestKey(0x0a000002, 443, 6);

        using BpfObject first = TestObjects.LoadProgs(fs.Path);
        BpfObjectMap firstMap = first.GetMap("pinned_hash");
        Assert.True(firstMap.IsPinned);
        Assert.Equal(fs["pinned_hash"], firstMap.PinPath);
        Assert.True(File.Exists(fs["pinned_hash"]));
        Assert.False(File.Exists(fs["lru_hash"])); // not LIBBPF_PIN_BY_NAME
        firstMap.As<TestKey, TestValue>().Update(key, new TestValue(9, 99, 999));

        using BpfObject second = TestObjects.LoadProgs(fs.Path);
        BpfObjectMap secondMap = second.GetMap("pinned_hash");

        Assert.Equal(firstMap.Map.Id, secondMap.Map.Id);
        Assert.True(secondMap.As<TestKey, TestValue>().TryLookup(key, out TestValue value));
        Assert.Equal(new TestValue(9, 99, 999), value);
        // Not pinned maps are per object.
        Assert.NotEqual(first.GetMap("lru_hash").Map.Id, second.GetMap("lru_hash").Map.Id);

        // Writes through the second object are seen by the first.
        secondMap.As<TestKey, TestValue>().Update(new TestKey(1, 2, 3), new TestValue(4, 5, 6));
        Assert.True(firstMap.As<TestKey, TestValue>().TryLookup(new TestKey(1, 2, 3), out value));
        Assert.Equal(4ul, value.Packets);
    }

    [PrivilegedFact]
    public void PinRootPath_IncompatiblePinnedMap_FailsLoad()
    {
        using var fs = new TempBpfFs();
        using (BpfObject first = TestObjects.LoadProgs(fs.Path))
        {
        }
        Assert.True(File.Exists(fs["pinned_hash"])); // pins outlive the object

        using BpfObject second = TestObjects.OpenProgs(fs.Path);
        second.GetMap("pinned_hash").SetMaxEntries(2048);

        var e = Assert.Throws<BpfException>(second.Load);
        Assert.Equal(22, e.Errno);
        Assert.Contains("pinned_hash", e.Message); // libbpf: "couldn't reuse pinned map at ...: parameter mismatch"
    }

    [PrivilegedFact]
    public void ObjectMap_PinAndUnpin_WithExplicitPath()
    {
        using var fs = new TempBpfFs();
        using BpfObject obj = TestObjects.OpenProgs();
        obj.GetMap("lru_hash").SetPinPath(fs["custom"]);
        obj.Load();

        Assert.True(obj.GetMap("lru_hash").IsPinned);
        using (BpfMap pinned = BpfMap.OpenPinned(fs["custom"]))
        {
            Assert.Equal(obj.GetMap("lru_hash").Map.Id, pinned.Id);
        }
        obj.GetMap("lru_hash").Unpin();
        Assert.False(File.Exists(fs["custom"]));
        Assert.False(obj.GetMap("lru_hash").IsPinned);
    }

    [PrivilegedFact]
    public void ReuseFd_LoadsAgainstAnExistingMap()
    {
        using BpfObject first = TestObjects.LoadProgs();
        first.GetMap("lru_hash").As<uint, ulong>().Update(7, 77);
        using BpfMap existing = BpfMap.FromId(first.GetMap("lru_hash").Map.Id);

        using BpfObject second = TestObjects.OpenProgs();
        second.GetMap("lru_hash").ReuseFd(existing);
        second.Load();

        Assert.Equal(existing.Id, second.GetMap("lru_hash").Map.Id);
        Assert.True(second.GetMap("lru_hash").As<uint, ulong>().TryLookup(7, out ulong v));
        Assert.Equal(77ul, v);
    }

    [PrivilegedFact]
    public void Pin_OutsideBpffs_Fails()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        string path = Path.Combine(Path.GetTempPath(), "not-bpffs-" + Guid.NewGuid().ToString("N"));

        var e = Assert.Throws<BpfException>(() => obj.GetMap("lru_hash").Map.Pin(path));

        Assert.Equal("bpf_obj_pin", e.Operation);
        Assert.Equal("lru_hash", e.ObjectName);
        Assert.Contains(path, e.Message);
        Assert.False(File.Exists(path));
    }

    [PrivilegedFact]
    public void Program_PinOpenPinnedAndFromId()
    {
        using var fs = new TempBpfFs();
        uint id;
        using (BpfObject obj = TestObjects.LoadProgs())
        {
            BpfProgram prog = obj.GetProgram("xdp_pass");
            prog.Pin(fs["xdp"]);
            id = prog.GetInfo().Id;
        }

        using BpfProgram pinned = BpfProgram.OpenPinned(fs["xdp"]);
        Assert.Null(pinned.Object);
        Assert.Equal("xdp_pass", pinned.Name);
        Assert.Equal(BpfProgramType.Xdp, pinned.Type);
        Assert.Equal(id, pinned.GetInfo().Id);
        Assert.Throws<InvalidOperationException>(() => pinned.SetAutoload(true));

        // A program reached by pin still runs (the CLI's use case).
        TestRunResult result = BpfProgram.TestRun(pinned.Fd, TestObjects.Frame(), []);
        Assert.Equal(TestObjects.XdpPass, result.ReturnValue);

        using BpfProgram byId = BpfProgram.FromId(id);
        Assert.Equal(pinned.GetInfo().Tag, byId.GetInfo().Tag);
        pinned.Unpin(fs["xdp"]);
        Assert.False(File.Exists(fs["xdp"]));
    }
}
