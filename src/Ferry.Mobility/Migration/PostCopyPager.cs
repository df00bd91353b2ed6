using System.Buffers.Binary;
using System.Diagnostics;
using Ferry.Engine.Memory;

namespace Ferry.Mobility.Migration;

/// <summary>
/// The target's side of post-copy after activation: receives the source's push, and fetches a frame ahead of it when
/// the guest touches one that is absent. The process waits only for its own faults. A pushed message that fails its
/// checksum costs a Resend of the frames still absent, not the process. If the source is lost before the last frame,
/// the process cannot go on: every wait fails with <see cref="PostCopySourceLostException"/>.
/// </summary>
public sealed class PostCopyPager
{
    /// <summary>Frames between two PushProgress reports: a quarter of the source's window, so that its push never waits for one.</summary>
    internal const int ProgressEvery = MigrationSource.PushWindow / 4;

    /// <summary>Resends asked for before a link that keeps corrupting the push is taken for broken, and the process lost.</summary>
    internal const int MaxResends = 8;

    private readonly MigrationChannel _channel;
    private readonly LinearMemory _memory;
    private readonly TimeSpan _fetchTimeout;
    private readonly Dictionary<long, (TaskCompletionSource Arrived, long Started)> _waiting = [];
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _toCome;
    // The frames the push covers (the memory may have grown since, with frames that were never the source's).
    private readonly long _frameCount;
    private long _outstanding;
    // Frames received that the source has been told of (the receive loop's alone).
    private long _reported;
    private long _faults;
    private long _blockedTicks;
    // Resend requests sent (the receive loop's alone).
    private uint _resends;
    private Exception? _lost;

    private PostCopyPager(MigrationChannel channel, LinearMemory memory, long frameCount, long outstanding, TimeSpan fetchTimeout)
    {
        _channel = channel;
        _memory = memory;
        _frameCount = frameCount;
        _toCome = _outstanding = outstanding;
        _fetchTimeout = fetchTimeout;
    }

    internal static PostCopyPager Start(MigrationChannel channel, LinearMemory memory, long frameCount, ulong[] toCome, TimeSpan fetchTimeout)
    {
        long outstanding = 0;
        foreach (var word in toCome) outstanding += System.Numerics.BitOperations.PopCount(word);
        var pager = new PostCopyPager(channel, memory, frameCount, outstanding, fetchTimeout);
        // Host functions that touch an absent frame wait on the calling thread.
        memory.AbsentFrameHandler = pager.WaitPresent;
        _ = Task.Run(pager.ReceiveAsync);
        return pager;
    }

    /// <summary>Completes when every frame has arrived and the source has been told; faults when the source is lost first.</summary>
    public Task Completion => _completion.Task;
    /// <summary>Frames not yet received.</summary>
    public long Outstanding => Interlocked.Read(ref _outstanding);
    /// <summary>Touches of absent frames that had to be fetched.</summary>
    public long Faults => Interlocked.Read(ref _faults);
    /// <summary>Total time the process waited for fetched frames.</summary>
    public TimeSpan Blocked => TimeSpan.FromTicks(Interlocked.Read(ref _blockedTicks));

    /// <summary>A task that completes when <paramref name="frame"/> is present (at once if it is), asking the source for it first.</summary>
    public Task WhenPresentAsync(long frame) => Fetch(frame).WaitAsync(_fetchTimeout);

    /// <summary>
    /// Blocks the calling thread (a guest's) until <paramref name="frame"/> is present, asking the source for it first. The
    /// receive loop wakes it directly; through <see cref="WhenPresentAsync"/> the wake-up took one more hop through the thread pool.
    /// </summary>
    public void WaitPresent(long frame)
    {
        try
        {
            if (!Fetch(frame).Wait(_fetchTimeout)) throw new PostCopySourceLostException($"frame {frame} did not arrive within {_fetchTimeout.TotalSeconds:0.#} s: {LostMessage}");
        }
        catch (AggregateException e) when (e.InnerException is PostCopySourceLostException lost)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(lost);
        }
    }

    /// <summary>The arrival of <paramref name="frame"/>, requested from the source unless it is here or already on its way.</summary>
    private Task Fetch(long frame)
    {
        TaskCompletionSource arrived;
        lock (_waiting)
        {
            if (_memory.Present.Get(frame)) return Task.CompletedTask;
            if (_lost is not null) return Task.FromException(new PostCopySourceLostException(LostMessage, _lost));
            if (_waiting.TryGetValue(frame, out var existing)) return existing.Arrived.Task;
            arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting[frame] = (arrived, Stopwatch.GetTimestamp());
            Interlocked.Increment(ref _faults);
        }
        _ = RequestAsync(frame);
        return arrived.Task;
    }

    private string LostMessage => $"post-copy lost its source with {Outstanding} memory frames not yet received: the process cannot continue";

    private async Task RequestAsync(long frame)
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)frame);
        try
        {
            await SendAsync(MigrationFrame.FrameRequest, payload);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            Lose(e);
        }
    }

    /// <summary>Sends one frame to the source: fault requests, progress and the acknowledgement come from different threads.</summary>
    private async Task SendAsync(MigrationFrame type, byte[] payload)
    {
        await _sending.WaitAsync();
        try
        {
            await _channel.SendAsync(type, payload);
        }
        finally
        {
            _sending.Release();
        }
    }

    private async Task ReceiveAsync()
    {
        try
        {
            while (true)
            {
                MigrationFrame type;
                ReadOnlyMemory<byte> payload;
                try
                {
                    (type, payload) = await _channel.ExpectAsync(CancellationToken.None, MigrationFrame.Frames, MigrationFrame.PushEnd);
                }
                catch (MigrationChecksumException) when (_resends < MaxResends)
                {
                    // Its frame numbers cannot be trusted either: every frame still absent is asked for again.
                    await AskResendAsync();
                    continue;
                }
                if (type == MigrationFrame.PushEnd)
                {
                    if (payload.Length != 12) throw new MigrationProtocolException($"a PushEnd of {payload.Length} bytes");
                    // Sent before the source heard of the latest Resend: the frames it asked for are still to come.
                    if (BinaryPrimitives.ReadUInt32LittleEndian(payload.Span[8..]) < _resends) continue;
                    break;
                }
                FrameBatch.Apply(payload.Span, _memory, Arrived, _resends == 0 ? WhenPresent.Refuse : WhenPresent.Skip);
                if (_toCome - Outstanding - _reported >= ProgressEvery) await ReportProgressAsync();
            }
            if (Outstanding != 0) throw new MigrationProtocolException($"the source ended its push with {Outstanding} frames missing");
            _memory.PresenceTracking = false;
            _memory.AbsentFrameHandler = null;
            var ack = new byte[16];
            BinaryPrimitives.WriteInt64LittleEndian(ack, Faults);
            BinaryPrimitives.WriteInt64LittleEndian(ack.AsSpan(8), Blocked.Ticks);
            await SendAsync(MigrationFrame.PushAck, ack);
            _completion.TrySetResult();
        }
        catch (Exception e) when (e is IOException or MigrationProtocolException or ObjectDisposedException or System.Net.Sockets.SocketException or ArgumentOutOfRangeException)
        {
            if (Outstanding == 0)
            {
                // Every frame is here; only the end of the push or its acknowledgement was lost: nothing depends on the source.
                _memory.PresenceTracking = false;
                _memory.AbsentFrameHandler = null;
                _completion.TrySetResult();
                return;
            }
            // The source hears why before the process learns it is lost (its host may close the connection then).
            await LetGoOfSourceAsync(e);
            Lose(e);
        }
    }

    /// <summary>
    /// After a loss in the push, tells the source why if the connection still works (a frame that failed its checksum, a
    /// broken protocol) and closes it: the source's push ends at once, with the reason, instead of waiting on its window.
    /// </summary>
    private async Task LetGoOfSourceAsync(Exception cause)
    {
        if (cause is not (MigrationProtocolException or ArgumentOutOfRangeException))
        {
            _channel.Close();
            return;
        }
        // Fault requests may be sending from guest threads: the Abort waits its turn, for at most a second.
        if (await _sending.WaitAsync(TimeSpan.FromSeconds(1)))
        {
            try
            {
                await _channel.TryAbortAsync($"the target lost the process: {cause.Message}");
            }
            finally
            {
                _sending.Release();
            }
        }
        await _channel.CloseAfterPeerAsync(TimeSpan.FromSeconds(2));
    }

    /// <summary>Asks the source to push again every frame not present here: the lost message's, and any still in flight.</summary>
    private async Task AskResendAsync()
    {
        _resends++;
        var absent = _memory.Present.Snapshot();
        for (var i = 0; i < absent.Length; i++) absent[i] = ~absent[i];
        if ((_frameCount & 63) != 0) absent[_frameCount >> 6] &= (1UL << (int)(_frameCount & 63)) - 1;
        var bitmap = FrameSetPayload.Encode(absent, _frameCount);
        var payload = new byte[4 + bitmap.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, _resends);
        bitmap.CopyTo(payload, 4);
        await SendAsync(MigrationFrame.Resend, payload);
    }

    /// <summary>Tells the source how many frames arrived, so that it sends more: it keeps a window of frames in flight, not a queue.</summary>
    private async Task ReportProgressAsync()
    {
        _reported = _toCome - Outstanding;
        var progress = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(progress, _reported);
        await SendAsync(MigrationFrame.PushProgress, progress);
    }

    private void Arrived(long frame)
    {
        Interlocked.Decrement(ref _outstanding);
        TaskCompletionSource? arrived = null;
        lock (_waiting)
        {
            if (_waiting.Remove(frame, out var entry))
            {
                arrived = entry.Arrived;
                Interlocked.Add(ref _blockedTicks, Stopwatch.GetElapsedTime(entry.Started).Ticks);
            }
        }
        arrived?.TrySetResult();
    }

    private void Lose(Exception cause)
    {
        List<TaskCompletionSource> waiting;
        lock (_waiting)
        {
            if (_lost is not null) return;
            _lost = cause;
            waiting = [.. _waiting.Values.Select(w => w.Arrived)];
            _waiting.Clear();
        }
        var lost = new PostCopySourceLostException(LostMessage, cause);
        foreach (var arrived in waiting) arrived.TrySetException(lost);
        _completion.TrySetException(lost);
    }
}
