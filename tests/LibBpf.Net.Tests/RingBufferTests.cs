namespace LibBpf.Net.Tests;

public class RingBufferTests
{
    [PrivilegedFact]
    public unsafe void Poll_DeliversRecordEmittedByTestRun()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        var records = new List<byte[]>();
        using var ring = new BpfRingBuffer(obj.GetMap("events").Map, data => records.Add(data.ToArray()));
        byte[] frame = TestObjects.Frame(80);

        Assert.Equal(0, ring.Consume());
        obj.GetProgram("tc_count").TestRun(frame, []);
        obj.GetProgram("tc_count").TestRun(frame, []);

        Assert.Equal(2, ring.Poll(1000));
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(sizeof(TestEvent), r.Length));
        fixed (byte* p = records[0])
        {
            var ev = (TestEvent*)p;
            Assert.Equal(80u, ev->Len);
            Assert.Equal(frame.AsSpan(0, 8).ToArray(), new ReadOnlySpan<byte>(ev->Head, 8).ToArray()); // before the rewrite
        }
        Assert.Equal(0, ring.Poll(0));
    }

    [PrivilegedFact]
    public void CallbackException_IsRethrownByPoll()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        int calls = 0;
        using var ring = new BpfRingBuffer(obj.GetMap("events").Map, _ =>
        {
            calls++;
            throw new InvalidOperationException("boom");
        });
        obj.GetProgram("tc_count").TestRun(TestObjects.Frame(), []);
        obj.GetProgram("tc_count").TestRun(TestObjects.Frame(), []);

        var e = Assert.Throws<InvalidOperationException>(() => ring.Poll(1000));
        Assert.Equal("boom", e.Message);
        Assert.Equal(1, calls);
        Assert.Throws<InvalidOperationException>(() => ring.Consume()); // the second record
        Assert.Equal(2, calls);
        Assert.Equal(0, ring.Consume());
    }

    [PrivilegedFact]
    public void NotARingBuffer_IsRejected()
    {
        using BpfObject obj = TestObjects.LoadProgs();

        Assert.Throws<ArgumentException>(() => new BpfRingBuffer(obj.GetMap("lru_hash").Map, _ => { }));
    }
}
