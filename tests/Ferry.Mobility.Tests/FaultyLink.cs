using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Ferry.Mobility.Migration;

namespace Ferry.Mobility.Tests;

/// <summary>What a <see cref="FaultyLink"/> does to the first frame of its trigger type.</summary>
public enum LinkFault
{
    /// <summary>Closes both connections before the frame passes, as a pulled cable or a target that died.</summary>
    Cut,
    /// <summary>Flips one payload bit: the receiver's checksum must catch it.</summary>
    Corrupt,
}

/// <summary>
/// A TCP relay on 127.0.0.1 between a migration's source and target that reads the protocol's frames as they pass
/// and injects one fault at the first frame of a chosen type, in either direction (none without a trigger), or at the first
/// after Activate (a pushed frame, where pre-copy rounds sent frames of the same type before); a corruption may repeat
/// on the next frames of that type, as a link that keeps damaging them would. It also
/// watches post-copy's flow control: how far the frames pushed after Activate ran ahead of the target's PushProgress.
/// </summary>
public sealed class FaultyLink : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly TcpClient _toTarget = new();
    private readonly MigrationFrame? _trigger;
    private readonly LinkFault _fault;
    private readonly MigrationFrame? _after;
    private bool _afterSeen;
    private readonly int _times;
    private readonly MigrationFrame? _alsoCorrupt;
    private int _alsoFirings;
    private readonly CancellationTokenSource _stop = new();
    private TcpClient? _fromSource;
    private int _firings;
    private bool _activated;
    private long _pushed;
    private long _progress;
    private long _mostAhead;

    /// <param name="after">Only frames of the trigger type that follow the first frame of this type are hit (Activate: post-copy's push; Image: pre-copy's final frames).</param>
    /// <param name="times">Frames of the trigger type that are corrupted, the first of them and those right after it (a cut happens once).</param>
    /// <param name="alsoCorrupt">A second type whose first frame after the fault is corrupted too, such as the Resend that answers a corrupt Frames.</param>
    public FaultyLink(MigrationFrame? trigger, LinkFault fault = LinkFault.Cut, MigrationFrame? after = null, int times = 1, MigrationFrame? alsoCorrupt = null)
    {
        _alsoCorrupt = alsoCorrupt;
        _trigger = trigger;
        _fault = fault;
        _after = after;
        _times = fault == LinkFault.Cut ? 1 : times;
        _listener.Start();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public bool Fired => Volatile.Read(ref _firings) > 0;
    public bool AlsoFired => Volatile.Read(ref _alsoFirings) > 0;
    /// <summary>Frames the fault hit so far.</summary>
    public int Firings => Math.Min(Volatile.Read(ref _firings), _times);
    /// <summary>Frames sent after Activate, and the most of them that were ever ahead of the last PushProgress that passed.</summary>
    public long Pushed => Interlocked.Read(ref _pushed);
    public long MostAheadOfProgress => Interlocked.Read(ref _mostAhead);

    /// <summary>Relays between a source that connects to <see cref="Port"/> and the target at <paramref name="target"/>.</summary>
    public async Task RunAsync(IPEndPoint target)
    {
        _fromSource = await _listener.AcceptTcpClientAsync();
        await _toTarget.ConnectAsync(target);
        var a = _fromSource.GetStream();
        var b = _toTarget.GetStream();
        await Task.WhenAll(Pump(a, b), Pump(b, a));
    }

    private async Task Pump(NetworkStream from, NetworkStream to)
    {
        var header = new byte[5];
        try
        {
            while (true)
            {
                await from.ReadExactlyAsync(header, _stop.Token);
                var length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1));
                var rest = new byte[length + 4];
                await from.ReadExactlyAsync(rest, _stop.Token);
                var afterSeen = Watch((MigrationFrame)header[0], rest);
                if ((MigrationFrame)header[0] == _trigger && (afterSeen || _after is null) && Interlocked.Increment(ref _firings) <= _times)
                {
                    if (_fault == LinkFault.Cut)
                    {
                        Close();
                        return;
                    }
                    rest[length / 2] ^= 0x10;
                }
                else if ((MigrationFrame)header[0] == _alsoCorrupt && Fired && Interlocked.Increment(ref _alsoFirings) == 1)
                {
                    rest[length / 2] ^= 0x10;
                }
                await to.WriteAsync(header, _stop.Token);
                await to.WriteAsync(rest, _stop.Token);
            }
        }
        catch (EndOfStreamException)
        {
            // A peer that closed its sending side is passed on as such: the other direction may still carry its last frames.
            ShutDownSending(to);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            Close();
        }
    }

    /// <summary>Follows the push's flow control; returns whether this frame comes after the first of the <c>after</c> type.</summary>
    private bool Watch(MigrationFrame type, byte[] payload)
    {
        lock (_stop)
        {
            var after = _afterSeen;
            if (type == _after) _afterSeen = true;
            if (type == MigrationFrame.Activate) _activated = true;
            if (type == MigrationFrame.PushProgress) _progress = BinaryPrimitives.ReadInt64LittleEndian(payload);
            if (type != MigrationFrame.Frames || !_activated) return after;
            _pushed += BinaryPrimitives.ReadUInt32LittleEndian(payload);
            _mostAhead = Math.Max(_mostAhead, _pushed - _progress);
            return after;
        }
    }

    private static void ShutDownSending(NetworkStream to)
    {
        try
        {
            to.Socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }

    private void Close()
    {
        _stop.Cancel();
        _fromSource?.Client.Close(0);
        _toTarget.Client.Close(0);
    }

    public ValueTask DisposeAsync()
    {
        Close();
        _listener.Stop();
        _fromSource?.Dispose();
        _toTarget.Dispose();
        return ValueTask.CompletedTask;
    }
}
