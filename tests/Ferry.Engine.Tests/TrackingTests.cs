using Ferry.Engine.Memory;
using Ferry.Tests.Shared;
using Ferry.Wasm;

namespace Ferry.Engine.Tests;

/// <summary>The dirty bitmap marks exactly the frames written, and the line map the 64-byte lines; absent frames stop the run before any effect.</summary>
public sealed class TrackingTests
{
    private const int Frame = LinearMemory.FrameSize;

    private readonly Store _store = new();
    private readonly Instance _instance;
    private readonly LinearMemory _memory;

    public TrackingTests()
    {
        _instance = new Linker().Instantiate(_store, Module.Load(Wat.Program("memops")));
        _memory = _instance.Memory!;
    }

    private Value[] Call(string export, params Value[] arguments) => _store.Invoke(_instance.GetFunction(export), arguments);

    private long[] Harvest() => [.. FrameBitmap.SetFrames(_memory.Dirty.Harvest())];

    /// <summary>The lines marked in the frames marked, as line numbers (address / 64), harvesting both.</summary>
    private long[] HarvestLines()
    {
        var lines = Array.Empty<ulong>();
        _memory.DirtyLines.HarvestInto(_memory.Dirty.Harvest(), ref lines);
        var marked = new List<long>();
        for (var frame = 0; frame < lines.Length; frame++)
        {
            for (var bit = 0; bit < 64; bit++)
            {
                if ((lines[frame] & (1UL << bit)) != 0) marked.Add(frame * 64L + bit);
            }
        }
        return [.. marked];
    }

    private static long[] LinesOf(long address, long length) =>
        [.. Enumerable.Range(0, (int)((address + length - 1) / 64 - address / 64 + 1)).Select(i => address / 64 + i)];

    private static long[] FramesOf(long address, long length) =>
        length == 0 ? [] : [.. Enumerable.Range(0, (int)((address + length - 1) / Frame - address / Frame + 1)).Select(i => address / Frame + i)];

    public static TheoryData<string, int, ValType> Stores() => new()
    {
        { "i32.store", 4, ValType.I32 }, { "i64.store", 8, ValType.I64 }, { "f32.store", 4, ValType.F32 }, { "f64.store", 8, ValType.F64 },
        { "i32.store8", 1, ValType.I32 }, { "i32.store16", 2, ValType.I32 }, { "i64.store8", 1, ValType.I64 },
        { "i64.store16", 2, ValType.I64 }, { "i64.store32", 4, ValType.I64 },
    };

    private static Value Operand(ValType type) => type switch
    {
        ValType.I32 => Value.I32(-1),
        ValType.I64 => Value.I64(-1),
        ValType.F32 => Value.F32(1.5f),
        _ => Value.F64(2.5),
    };

    [Theory]
    [MemberData(nameof(Stores))]
    public void Every_store_width_marks_exactly_the_frames_it_writes(string store, int width, ValType type)
    {
        _memory.DirtyTracking = true;
        Assert.Empty(Harvest());
        long[] addresses = [0, 100, Frame - 1, Frame - width / 2, 5 * Frame + 7, 2 * 65536 - width];
        foreach (var address in addresses)
        {
            Call(store, Value.I32((int)address), Operand(type));
            Assert.Equal(FramesOf(address, width), Harvest());
        }
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public void Every_store_width_marks_exactly_the_lines_it_writes(string store, int width, ValType type)
    {
        _memory.DirtyTracking = true;
        long[] addresses = [0, 60, 63, 64 - width / 2, Frame - width / 2, 5 * Frame + 7 * 64 + 3, 2 * 65536 - width];
        foreach (var address in addresses)
        {
            Call(store, Value.I32((int)address), Operand(type));
            Assert.Equal(LinesOf(address, width), HarvestLines());
        }
    }

    [Fact]
    public void Bulk_operations_mark_exactly_their_destination_lines_and_a_harvest_takes_only_the_frames_it_names()
    {
        _memory.DirtyTracking = true;
        // Across three frames, the middle one whole.
        Call("fill", Value.I32(Frame - 10), Value.I32(0x5A), Value.I32(2 * Frame + 20));
        Assert.Equal(LinesOf(Frame - 10, 2 * Frame + 20), HarvestLines());
        Call("copy", Value.I32(10 * Frame + 4000), Value.I32(0), Value.I32(200));
        Assert.Equal(LinesOf(10 * Frame + 4000, 200), HarvestLines());
        Call("i32.store", Value.I32(3 * Frame + 128), Value.I32(1));
        Call("i32.store", Value.I32(9 * Frame + 64), Value.I32(1));
        // A harvest of frame 3 alone leaves frame 9's lines for the next; what it takes it adds to what the caller holds.
        var frame3 = new ulong[1];
        frame3[0] = 1UL << 3;
        var held = new ulong[] { 0, 0, 0, 1UL << 63 };
        _memory.DirtyLines.HarvestInto(frame3, ref held);
        Assert.Equal(_memory.FrameCount, held.Length);
        Assert.Equal((1UL << 63) | (1UL << 2), held[3]);
        Assert.Equal(LinesOf(9 * Frame + 64, 4), HarvestLines());
    }

    [Fact]
    public void Clearing_by_a_mask_clears_exactly_the_frames_the_mask_names()
    {
        var present = new FrameBitmap(200);
        present.SetAll(200);
        var mask = new FrameBitmap(200);
        long[] absent = [0, 63, 64, 130, 199];
        foreach (var frame in absent) mask.Set(frame);
        present.ClearWhere(mask.Snapshot());
        for (long frame = 0; frame < 200; frame++) Assert.Equal(!absent.Contains(frame), present.Get(frame));
    }

    [Fact]
    public void Loads_mark_nothing_and_a_harvest_clears_the_bitmap()
    {
        _memory.DirtyTracking = true;
        Call("i32.store", Value.I32(3 * Frame), Value.I32(7));
        Call("i64.load", Value.I32(9 * Frame - 4));
        Call("load8", Value.I32(20 * Frame));
        Assert.Equal([3L], Harvest());
        Assert.Empty(Harvest());
    }

    [Fact]
    public void Nothing_is_marked_while_tracking_is_off()
    {
        Call("i32.store", Value.I32(3 * Frame), Value.I32(7));
        Call("fill", Value.I32(0), Value.I32(1), Value.I32(3 * Frame));
        Assert.Empty(Harvest());
    }

    [Fact]
    public void Bulk_operations_mark_exactly_their_destination_frames()
    {
        _memory.DirtyTracking = true;
        Call("fill", Value.I32(Frame - 10), Value.I32(0x5A), Value.I32(2 * Frame + 20));
        Assert.Equal(FramesOf(Frame - 10, 2 * Frame + 20), Harvest());
        Call("copy", Value.I32(10 * Frame + 4000), Value.I32(0), Value.I32(200));
        Assert.Equal(FramesOf(10 * Frame + 4000, 200), Harvest());
        Call("init", Value.I32(20 * Frame - 5), Value.I32(2), Value.I32(20));
        Assert.Equal(FramesOf(20 * Frame - 5, 20), Harvest());
        Call("fill", Value.I32(0), Value.I32(1), Value.I32(0));
        Assert.Empty(Harvest());
    }

    [Fact]
    public void Memory_grow_marks_the_new_frames_and_later_stores_are_tracked()
    {
        _memory.DirtyTracking = true;
        Assert.Equal(2, Call("grow", Value.I32(1))[0].AsI32());
        Assert.Equal(FramesOf(2 * 65536, 65536), Harvest());
        Call("i64.store", Value.I32(3 * 65536 - 8), Value.I64(1));
        Assert.Equal(FramesOf(3 * 65536 - 8, 8), Harvest());
    }

    private void MakeAbsent(params long[] frames)
    {
        _memory.Present.SetAll(_memory.FrameCount);
        foreach (var frame in frames) _memory.Present.Clear(frame);
        _memory.PresenceTracking = true;
    }

    private Execution Start(string export, params Value[] arguments) => _store.Start(_instance.GetFunction(export), arguments);

    [Fact]
    public void A_load_from_an_absent_frame_stops_the_run_and_completes_once_the_frame_is_present()
    {
        var page = new byte[Frame];
        page[16] = 42;
        MakeAbsent(7);
        var execution = Start("i32.load", Value.I32(7 * Frame + 16));
        Assert.Equal(ExecutionStatus.FrameAbsent, execution.Run());
        Assert.Equal(7, execution.AbsentFrame);
        _memory.WriteFrame(7, page);
        Assert.Equal(ExecutionStatus.Finished, execution.Run());
        Assert.Equal(42, execution.Results[0].AsI32());
    }

    [Fact]
    public void A_store_to_an_absent_frame_has_no_effect_until_the_frame_arrives()
    {
        MakeAbsent(4);
        var execution = Start("i32.store", Value.I32(4 * Frame + 8), Value.I32(0x01020304));
        Assert.Equal(ExecutionStatus.FrameAbsent, execution.Run());
        Assert.Equal(4, execution.AbsentFrame);
        Assert.True(_memory.Span.Slice(4 * Frame, Frame).IndexOfAnyExcept((byte)0) < 0, "the faulting store wrote before its frame arrived");
        var arrived = new byte[Frame];
        arrived[0] = 9;
        _memory.WriteFrame(4, arrived);
        Assert.Equal(ExecutionStatus.Finished, execution.Run());
        Assert.Equal(9, _memory.Span[4 * Frame]);
        Assert.Equal(0x01020304, BitConverter.ToInt32(_memory.Span.Slice(4 * Frame + 8, 4)));
    }

    [Fact]
    public void An_access_straddling_into_an_absent_frame_waits_for_it()
    {
        MakeAbsent(6);
        var execution = Start("i64.store", Value.I32(6 * Frame - 4), Value.I64(-1));
        Assert.Equal(ExecutionStatus.FrameAbsent, execution.Run());
        Assert.Equal(6, execution.AbsentFrame);
        Assert.Equal(0, _memory.Span[6 * Frame - 4]);
        _memory.WriteFrame(6, new byte[Frame]);
        Assert.Equal(ExecutionStatus.Finished, execution.Run());
        Assert.Equal(-1L, BitConverter.ToInt64(_memory.Span.Slice(6 * Frame - 4, 8)));
    }

    [Theory]
    [InlineData("fill")]
    [InlineData("copy")]
    [InlineData("init")]
    public void Bulk_operations_touching_absent_frames_wait_for_each_of_them(string operation)
    {
        MakeAbsent(2, 3);
        var arguments = operation switch
        {
            "fill" => new[] { Value.I32(2 * Frame - 1), Value.I32(0x77), Value.I32(Frame + 2) },
            "copy" => [Value.I32(2 * Frame + 10), Value.I32(0), Value.I32(16)],
            _ => [Value.I32(3 * Frame), Value.I32(0), Value.I32(16)],
        };
        var execution = Start(operation, arguments);
        var fetched = new List<long>();
        while (execution.Run() == ExecutionStatus.FrameAbsent)
        {
            Assert.True(_memory.Span.Slice(2 * Frame, 2 * Frame).IndexOfAnyExcept((byte)0) < 0, "a bulk operation wrote before all its frames arrived");
            fetched.Add(execution.AbsentFrame);
            _memory.WriteFrame(execution.AbsentFrame, new byte[Frame]);
        }
        Assert.Equal(ExecutionStatus.Finished, execution.Status);
        Assert.NotEmpty(fetched);
        if (operation == "fill") Assert.Equal(0x77, _memory.Span[3 * Frame]);
        if (operation == "init") Assert.Equal((byte)'0', _memory.Span[3 * Frame]);
    }
}
