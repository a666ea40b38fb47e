namespace LibBpf.Net.Tests;

public class MapTests
{
    [PrivilegedFact]
    public void Hash_CreateReadUpdateDelete()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<TestKey, TestValue> map = obj.GetMap("pinned_hash").As<TestKey, TestValue>();
        var key = new TestKey(0x0a000001, 80, 6);

        Assert.False(map.TryLookup(key, out _));
        map.Update(key, new TestValue(1, 7, 0x10));
        Assert.True(map.TryLookup(key, out TestValue value));
        Assert.Equal(new TestValue(1, 7, 0x10), value);

        map.Update(key, new TestValue(2, 8, 0), BpfMapUpdateFlags.Exist);
        Assert.True(map.TryLookup(key, out value));
        Assert.Equal(2ul, value.Packets);
        Assert.Equal(8u, value.Backend);

        var exists = Assert.Throws<BpfException>(() => map.Update(key, default, BpfMapUpdateFlags.NoExist));
        Assert.Equal(17, exists.Errno);
        Assert.Equal("EEXIST", exists.ErrnoName);
        var missing = Assert.Throws<BpfException>(() => map.Update(new TestKey(1, 1, 1), default, BpfMapUpdateFlags.Exist));
        Assert.Equal(2, missing.Errno);

        Assert.True(map.Delete(key));
        Assert.False(map.Delete(key));
        Assert.False(map.TryLookup(key, out _));
    }

    [PrivilegedFact]
    public void Update_FullMap_ThrowsE2BigWithMapName()
    {
        using BpfObject obj = TestObjects.OpenProgs();
        obj.GetMap("pinned_hash").SetMaxEntries(2);
        obj.Load();
        BpfMap<TestKey, TestValue> map = obj.GetMap("pinned_hash").As<TestKey, TestValue>();
        map.Update(new TestKey(1, 1, 1), default);
        map.Update(new TestKey(2, 2, 2), default);

        var e = Assert.Throws<BpfException>(() => map.Update(new TestKey(3, 3, 3), default));

        Assert.Equal(7, e.Errno);
        Assert.Equal("bpf_map_update_elem", e.Operation);
        Assert.Equal("map", e.ObjectKind);
        Assert.Equal("pinned_hash", e.ObjectName);
        Assert.Equal("bpf_map_update_elem on map 'pinned_hash' failed: E2BIG (errno 7): Argument list too long", e.Message);
    }

    [PrivilegedFact]
    public void TypedView_SizeMismatch_Throws()
    {
        using BpfObject obj = TestObjects.LoadProgs();

        var key = Assert.Throws<ArgumentException>(() => obj.GetMap("pinned_hash").As<uint, TestValue>());
        Assert.Contains("map 'pinned_hash' has 8-byte keys but UInt32 is 4 bytes", key.Message);
        var value = Assert.Throws<ArgumentException>(() => obj.GetMap("pinned_hash").As<TestKey, ulong>());
        Assert.Contains("16-byte values but UInt64 is 8 bytes", value.Message);
        Assert.Throws<ArgumentException>(() => obj.GetMap("pcpu_hash").As<uint, ulong>());
        Assert.Throws<ArgumentException>(() => obj.GetMap("lru_hash").AsPerCpu<uint, ulong>());
        Assert.Throws<ArgumentException>(() => obj.GetMap("lru_hash").Map.TryLookup(new byte[3], new byte[8]));
    }

    [PrivilegedFact]
    public void Keys_And_Entries_WalkTheWholeMap()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<uint, ulong> map = obj.GetMap("lru_hash").As<uint, ulong>();
        for (uint i = 1; i <= 100; i++)
        {
            map.Update(i, i * 1000);
        }

        Assert.Equal(Enumerable.Range(1, 100).Select(i => (uint)i), map.Keys().Order());
        var entries = map.Entries().ToDictionary(e => e.Key, e => e.Value);
        Assert.Equal(100, entries.Count);
        Assert.All(entries, e => Assert.Equal(e.Key * 1000, e.Value));
    }

    [PrivilegedFact]
    public void CountEntries_HashesInBatchesAndByKey_ArraysAreFull()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<uint, ulong> lru = obj.GetMap("lru_hash").As<uint, ulong>();
        BpfPerCpuMap<uint, ulong> pcpu = obj.GetMap("pcpu_hash").AsPerCpu<uint, ulong>();
        Assert.Equal(0, lru.Map.CountEntries());
        var values = new ulong[pcpu.CpuCount];
        for (uint i = 1; i <= 100; i++)
        {
            lru.Update(i, i);
            if (i <= 7)
                pcpu.Update(i, values);
        }

        // Batches smaller than the map (several calls) and larger; per-CPU values need the wider buffers.
        Assert.Equal(100, lru.Map.CountEntries(batchSize: 7));
        Assert.Equal(100, lru.Map.CountEntries());
        Assert.Equal(7, pcpu.Map.CountEntries(batchSize: 3));
        lru.Delete(50);
        Assert.Equal(99, lru.Map.CountEntries(batchSize: 1));
        Assert.Equal(8, obj.GetMap("config").Map.CountEntries());
    }

    [PrivilegedFact]
    public void Entries_Array_ReturnsEverySlot()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<uint, uint> config = obj.GetMap("config").As<uint, uint>();
        config.Update(3, 33);

        var entries = config.Entries().ToList();

        Assert.Equal(8, entries.Count);
        Assert.Equal(33u, entries.Single(e => e.Key == 3).Value);
        Assert.All(entries.Where(e => e.Key != 3), e => Assert.Equal(0u, e.Value));
        var e = Assert.Throws<BpfException>(() => config.Delete(3)); // arrays cannot delete
        Assert.Equal(22, e.Errno);
    }

    [PrivilegedFact]
    public void LookupBatch_SmallBuffers_ReadsEveryEntryOnce()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<TestKey, TestValue> map = obj.GetMap("pinned_hash").As<TestKey, TestValue>();
        for (uint i = 0; i < 50; i++)
        {
            map.Update(new TestKey(i, (ushort)i, 17), new TestValue(i, i + 1, 0));
        }

        var seen = new Dictionary<uint, TestValue>();
        var cursor = new BpfMapBatchCursor();
        var keys = new TestKey[8];
        var values = new TestValue[8];
        int calls = 0;
        while (!cursor.IsComplete)
        {
            int n = map.LookupBatch(cursor, keys, values);
            for (int i = 0; i < n; i++)
            {
                seen.Add(keys[i].Addr, values[i]);
            }
            Assert.True(++calls < 100);
        }

        Assert.Equal(50, seen.Count);
        Assert.All(seen, e => Assert.Equal(e.Key + 1, e.Value.Backend));
        Assert.True(calls > 1);
        Assert.Equal(0, map.LookupBatch(cursor, keys, values));
    }

    [PrivilegedFact]
    public void UpdateBatch_And_DeleteBatch()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<uint, ulong> map = obj.GetMap("lru_hash").As<uint, ulong>();
        uint[] keys = Enumerable.Range(0, 40).Select(i => (uint)i).ToArray();
        ulong[] values = keys.Select(k => (ulong)k << 32).ToArray();

        map.UpdateBatch(keys, values);

        Assert.True(map.TryLookup(39, out ulong v39));
        Assert.Equal(39ul << 32, v39);
        Assert.Equal(40, map.Keys().Count());

        // 1000 and 2000 do not exist: skipped, the rest is deleted.
        int deleted = map.DeleteBatch([0, 1, 1000, 2, 3, 2000, 4]);

        Assert.Equal(5, deleted);
        Assert.Equal(Enumerable.Range(5, 35).Select(i => (uint)i), map.Keys().Order());
        Assert.Throws<ArgumentException>(() => map.UpdateBatch(keys, values.AsSpan(1)));
    }

    [PrivilegedFact]
    public void Iteration_ToleratesDeletes()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<uint, ulong> map = obj.GetMap("lru_hash").As<uint, ulong>();
        for (uint i = 0; i < 30; i++)
        {
            map.Update(i, i);
        }

        // Deleting the current key while walking keys (get_next_key restarts at the first remaining key).
        int visited = 0;
        foreach (uint key in map.Keys())
        {
            Assert.True(map.Delete(key));
            Assert.True(++visited <= 30);
        }
        Assert.Equal(30, visited);
        Assert.Empty(map.Keys());

        // Entries deleted by someone else mid-walk are not returned with stale values.
        for (uint i = 0; i < 30; i++)
        {
            map.Update(i, i);
        }
        var seen = new List<uint>();
        foreach (KeyValuePair<uint, ulong> entry in map.Entries())
        {
            Assert.Equal(entry.Key, entry.Value);
            seen.Add(entry.Key);
            map.Delete(entry.Key);
        }
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(30, seen.Count);
        Assert.Empty(map.Keys());
    }

    [PrivilegedFact]
    public void PerCpuArray_HandlesThe8ByteStride()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfPerCpuMap<uint, PcpuValue> map = obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>();
        int cpus = Libbpf.NumPossibleCpus;
        Assert.Equal(cpus, map.CpuCount);
        Assert.Equal(16 * cpus, map.Map.ValueBufferSize); // 12-byte values, 16-byte slots

        var values = new PcpuValue[cpus];
        for (int cpu = 0; cpu < cpus; cpu++)
        {
            values[cpu] = new PcpuValue { Packets = (uint)cpu + 1, Bytes = 100u * (uint)cpu, LastLen = 0xdeadbeef };
        }
        map.Update(2, values);

        PcpuValue[] read = map.Lookup(2)!;
        Assert.Equal(values, read);
        Assert.All(map.Lookup(1)!, v => Assert.Equal(default, v));
        Assert.Equal(4, map.Entries().Count());
        Assert.Equal(values, map.Entries().Single(e => e.Key == 2).Value);
        Assert.Null(map.Lookup(4)); // beyond max_entries
        Assert.Throws<ArgumentException>(() => map.Update(0, new PcpuValue[cpus + 1]));
    }

    [PrivilegedFact]
    public void PerCpuHash_CreateReadDelete()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfPerCpuMap<uint, ulong> map = obj.GetMap("pcpu_hash").AsPerCpu<uint, ulong>();
        ulong[] values = Enumerable.Range(0, map.CpuCount).Select(i => (ulong)i * 3 + 1).ToArray();

        Assert.Null(map.Lookup(9));
        map.Update(9, values);

        Span<ulong> read = stackalloc ulong[map.CpuCount];
        Assert.True(map.TryLookup(9, read));
        Assert.Equal(values, read.ToArray());
        Assert.Equal([9u], map.Keys());
        Assert.True(map.Delete(9));
        Assert.False(map.Delete(9));
    }

    [PrivilegedFact]
    public void RawByteApi_RoundTrips()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap map = obj.GetMap("lru_hash").Map;

        map.Update(BitConverter.GetBytes(5u), BitConverter.GetBytes(55ul));
        var value = new byte[8];
        Assert.True(map.TryLookup(BitConverter.GetBytes(5u), value));
        Assert.Equal(55ul, BitConverter.ToUInt64(value));
        var next = new byte[4];
        Assert.True(map.TryGetNextKey([], next));
        Assert.Equal(5u, BitConverter.ToUInt32(next));
        Assert.False(map.TryGetNextKey(next, new byte[4]));
        Assert.True(map.Delete(BitConverter.GetBytes(5u)));
    }

    [PrivilegedFact]
    public void LookupAndUpdate_DoNotAllocate()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfMap<TestKey, TestValue> hash = obj.GetMap("pinned_hash").As<TestKey, TestValue>();
        BpfPerCpuMap<uint, PcpuValue> perCpu = obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>();
        Span<PcpuValue> values = stackalloc PcpuValue[perCpu.CpuCount];
        var key = new TestKey(1, 2, 3);
        hash.Update(key, default); // warm up
        hash.TryLookup(key, out _);
        perCpu.TryLookup(0, values);
        perCpu.Update(0, values);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            hash.Update(key, new TestValue((ulong)i, 0, 0));
            hash.TryLookup(key, out _);
            perCpu.TryLookup(0, values);
            perCpu.Update(0, values);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.True(hash.TryLookup(key, out TestValue last));
        Assert.Equal(999ul, last.Packets);
    }
}
