namespace LibBpf.Net.Tests;

public class ObjectTests
{
    [Fact] // opening parses the ELF file only: no privileges needed
    public void Open_ListsMapsAndProgramsBeforeLoad()
    {
        using BpfObject obj = TestObjects.OpenProgs();

        Assert.Equal("test_progs", obj.Name); // libbpf strips everything from the first '.'
        Assert.False(obj.IsLoaded);
        BpfObjectMap hash = obj.GetMap("pinned_hash");
        Assert.Equal(BpfMapType.Hash, hash.Type);
        Assert.Equal(8u, hash.KeySize);
        Assert.Equal(16u, hash.ValueSize);
        Assert.Equal(1024u, hash.MaxEntries);
        Assert.Null(hash.PinPath);
        Assert.Equal(BpfMapType.LruHash, obj.GetMap("lru_hash").Type);
        Assert.Equal(BpfMapType.PerCpuArray, obj.GetMap("pcpu_stats").Type);
        Assert.Equal(BpfMapType.RingBuf, obj.GetMap("events").Type);
        Assert.Contains(obj.Maps, m => m.Name == "config" && !m.IsInternal);

        BpfProgram tc = obj.GetProgram("tc_count");
        Assert.Equal("tc", tc.SectionName);
        Assert.Equal(BpfProgramType.SchedCls, tc.Type);
        Assert.True(tc.Autoload);
        Assert.Equal(BpfProgramType.Xdp, obj.GetProgram("xdp_pass").Type);
        Assert.Equal(["tc_count", "tc_pass", "xdp_pass"], obj.Programs.Select(p => p.Name).Order());

        var e = Assert.Throws<BpfException>(() => tc.Fd);
        Assert.Equal("bpf_program__fd", e.Operation);
    }

    [Fact] // opening parses the ELF file only: no privileges needed
    public void Open_WithPinRoot_SetsPinPathOfPinByNameMaps()
    {
        using BpfObject obj = BpfObject.Open(TestObjects.ProgsPath, new BpfObjectOpenOptions { PinRootPath = "/tmp/some-root", ObjectName = "renamed" });

        Assert.Equal("renamed", obj.Name);
        Assert.Equal("/tmp/some-root/pinned_hash", obj.GetMap("pinned_hash").PinPath);
        Assert.Null(obj.GetMap("lru_hash").PinPath);
    }

    [Fact] // opening parses the ELF file only: no privileges needed
    public void Open_MissingFile_ThrowsWithErrno()
    {
        var e = Assert.Throws<BpfException>(() => BpfObject.Open("/nonexistent/x.bpf.o"));

        Assert.Equal(2, e.Errno);
        Assert.Equal("ENOENT", e.ErrnoName);
        Assert.Equal("bpf_object__open_file", e.Operation);
        Assert.Equal("/nonexistent/x.bpf.o", e.ObjectName);
        Assert.StartsWith("bpf_object__open_file on file '/nonexistent/x.bpf.o' failed: ENOENT (errno 2): ", e.Message);
    }

    [Fact] // opening parses the ELF file only: no privileges needed
    public void GetMap_UnknownName_ListsMaps()
    {
        using BpfObject obj = TestObjects.OpenProgs();

        var e = Assert.Throws<BpfException>(() => obj.GetMap("nope"));
        Assert.Equal(2, e.Errno);
        Assert.Contains("lru_hash", e.Message);
        Assert.Throws<BpfException>(() => obj.GetProgram("nope"));
    }

    [PrivilegedFact]
    public void Load_CreatesMapsAndPrograms()
    {
        using BpfObject obj = TestObjects.LoadProgs();

        Assert.True(obj.IsLoaded);
        BpfMap map = obj.GetMap("lru_hash").Map;
        Assert.True(map.Id > 0);
        Assert.Equal(BpfMapType.LruHash, map.Type);
        Assert.Equal(4u, map.KeySize);
        Assert.Equal(8u, map.ValueSize);
        Assert.Equal(4096u, map.MaxEntries);
        Assert.True(map.Fd.IsBorrowed);
        Assert.Same(map, obj.GetMap("lru_hash").Map);

        BpfProgram prog = obj.GetProgram("tc_count");
        Assert.True(prog.Fd.DangerousGetFd() > 0);
        BpfProgramInfo info = prog.GetInfo();
        Assert.True(info.Id > 0);
        Assert.Equal(BpfProgramType.SchedCls, info.Type);
        Assert.Equal("tc_count", info.Name);
        Assert.Matches("^[0-9a-f]{16}$", info.Tag);
        Assert.True(info.XlatedProgramLength > 0);
        Assert.True(info.MapCount >= 3);

        // The kernel knows the map by id.
        using BpfMap byId = BpfMap.FromId(map.Id);
        Assert.Equal("lru_hash", byId.Name);
        Assert.False(byId.Fd.IsBorrowed);
    }

    [PrivilegedFact]
    public void Dispose_InvalidatesBorrowedViews()
    {
        BpfObject obj = TestObjects.LoadProgs();
        BpfMap<uint, ulong> map = obj.GetMap("lru_hash").As<uint, ulong>();
        map.Update(1, 2);
        uint id = map.Map.Id;

        obj.Dispose();

        Assert.Throws<ObjectDisposedException>(() => map.TryLookup(1, out _));
        Assert.Throws<ObjectDisposedException>(() => obj.GetMap("lru_hash").Map);
        // The unpinned map is gone from the kernel once its last fd is closed.
        var e = Assert.Throws<BpfException>(() => BpfMap.FromId(id));
        Assert.Equal(2, e.Errno);
    }

    [PrivilegedFact]
    public void SetMaxEntries_BeforeLoad_AppliesAndAfterLoad_Fails()
    {
        using BpfObject obj = TestObjects.OpenProgs();
        obj.GetMap("lru_hash").SetMaxEntries(8192);
        obj.Load();

        Assert.Equal(8192u, obj.GetMap("lru_hash").Map.MaxEntries);
        var e = Assert.Throws<BpfException>(() => obj.GetMap("lru_hash").SetMaxEntries(4));
        Assert.Equal(16, e.Errno); // EBUSY
        Assert.Equal("bpf_map__set_max_entries", e.Operation);
    }

    [PrivilegedFact]
    public void SetAutoCreate_False_LeavesMapUncreated()
    {
        using BpfObject obj = TestObjects.OpenProgs();
        obj.GetMap("lru_hash").SetAutoCreate(false); // not used by any program

        obj.Load();

        Assert.False(obj.GetMap("lru_hash").AutoCreate);
        var e = Assert.Throws<BpfException>(() => obj.GetMap("lru_hash").Map);
        Assert.Equal("bpf_map__fd", e.Operation);
        Assert.True(obj.GetMap("config").Map.Id > 0);
    }

    [PrivilegedFact]
    public void Load_VerifierRejection_ExceptionCarriesVerifierLog()
    {
        using BpfObject obj = BpfObject.Open(TestObjects.BadProgPath);

        var e = Assert.Throws<BpfException>(obj.Load);

        Assert.Equal("bpf_object__load", e.Operation);
        Assert.Equal("bad_prog", e.ObjectName);
        Assert.Equal(13, e.Errno); // EACCES: rejected by the verifier
        Assert.NotNull(e.Log);
        Assert.Contains("invalid access to packet", e.Log);
        Assert.Contains("bad_prog", e.Log);
        Assert.Contains("invalid access to packet", e.Message);
        Assert.StartsWith("bpf_object__load on object 'bad_prog' failed: EACCES (errno 13): Permission denied", e.Message);
        Assert.False(obj.IsLoaded);
    }

    [PrivilegedFact]
    public void SetAutoload_False_SkipsTheBadProgram()
    {
        using BpfObject obj = BpfObject.Open(TestObjects.BadProgPath);
        obj.GetProgram("bad_prog").SetAutoload(false);

        obj.Load();

        Assert.False(obj.GetProgram("bad_prog").Autoload);
        Assert.Equal(BpfProgramType.SchedCls, obj.GetProgram("good_prog").GetInfo().Type);
        Assert.Throws<BpfException>(() => obj.GetProgram("bad_prog").Fd);
        var again = Assert.Throws<BpfException>(() => obj.GetProgram("good_prog").SetAutoload(false));
        Assert.Equal(22, again.Errno); // libbpf 1.1: EINVAL once loaded
    }

    [PrivilegedFact]
    public void KernelLogLevel_KeepsVerifierLogOfSuccessfulLoad()
    {
        using BpfObject obj = BpfObject.Open(TestObjects.BadProgPath, new BpfObjectOpenOptions { KernelLogLevel = 1 });
        obj.GetProgram("bad_prog").SetAutoload(false);
        obj.GetProgram("big_prog").SetAutoload(false);

        obj.Load();

        Assert.NotNull(obj.LoadLog);
        Assert.Contains("processed", obj.LoadLog); // "processed N insns (limit ...)"
    }

    [PrivilegedFact]
    public void LogHandler_ReceivesFormattedLibbpfMessages()
    {
        var messages = new List<(LibBpfLogLevel Level, string Text)>();
        LibBpfLog.SetHandler((level, text) =>
        {
            lock (messages)
            {
                messages.Add((level, text));
            }
        }, LibBpfLogLevel.Debug);
        try
        {
            using BpfObject obj = BpfObject.Open(TestObjects.BadProgPath);
            Assert.Throws<BpfException>(obj.Load);
        }
        finally
        {
            LibBpfLog.SetHandler(null);
        }

        lock (messages)
        {
            // Formatted with vsnprintf: the program name is substituted into "prog '%s': ...".
            Assert.Contains(messages, m => m.Level == LibBpfLogLevel.Warn && m.Text.Contains("prog 'bad_prog'") && m.Text.Contains("invalid access to packet"));
            Assert.Contains(messages, m => m.Level == LibBpfLogLevel.Debug);
            Assert.DoesNotContain(messages, m => m.Text.EndsWith('\n'));
        }
    }

    [PrivilegedFact]
    public void LargeMessages_AreFormattedCompletely_AndLoadLogKeepsTheTail()
    {
        var logs = new List<string>();
        LibBpfLog.SetHandler((_, text) =>
        {
            if (text.Contains("prog 'big_prog': -- BEGIN PROG LOAD LOG --"))
            {
                lock (logs)
                {
                    logs.Add(text);
                }
            }
        }, LibBpfLogLevel.Debug);
        using BpfObject obj = BpfObject.Open(TestObjects.BadProgPath, new BpfObjectOpenOptions { KernelLogLevel = 2 });
        try
        {
            obj.GetProgram("bad_prog").SetAutoload(false);
            obj.GetProgram("good_prog").SetAutoload(false);
            obj.Load();
        }
        finally
        {
            LibBpfLog.SetHandler(null);
        }

        // One libbpf message holding the whole verbose verifier log: well beyond the 64 KiB first attempt.
        string log = Assert.Single(logs);
        Assert.True(log.Length > 64 * 1024, $"log is {log.Length} chars");
        Assert.EndsWith("-- END PROG LOAD LOG --", log);
        Assert.Contains("processed ", log);

        Assert.NotNull(obj.LoadLog);
        Assert.StartsWith("[... truncated ...]", obj.LoadLog);
        Assert.InRange(obj.LoadLog.Length, 32 * 1024, 33 * 1024);
        Assert.Contains("-- END PROG LOAD LOG --", obj.LoadLog);
    }
}
