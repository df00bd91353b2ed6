using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Ferry.Engine;
using Ferry.Wasi.Resources;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;

namespace Ferry.Wasi;

/// <summary>
/// A process's WASI preview1 host: its resource table and the host functions that serve it. What is not
/// granted is denied with the right errno, never faked; a wild pointer or length is EFAULT.
/// </summary>
public sealed partial class WasiProcess : IDisposable
{
    public const string ModuleName = "wasi_snapshot_preview1";

    private delegate Errno Function(HostCallContext context, ReadOnlySpan<ulong> arguments);

    private readonly WasiConfiguration _configuration;
    private readonly byte[][] _arguments;
    private readonly byte[][] _environment;
    private readonly long _monotonicStart = Stopwatch.GetTimestamp();

    public WasiProcess(WasiConfiguration configuration)
    {
        _configuration = configuration;
        _arguments = [.. configuration.Arguments.Select(NullTerminated)];
        _environment = [.. configuration.Environment.Select(pair => NullTerminated($"{pair.Key}={pair.Value}"))];
        Resources.Add(new StdioResource(ResourceKind.Stdin, configuration.Stdin));
        Resources.Add(new StdioResource(ResourceKind.Stdout, configuration.Stdout));
        Resources.Add(new StdioResource(ResourceKind.Stderr, configuration.Stderr));
        foreach (var preopen in configuration.Preopens) Resources.Add(new DirectoryResource(preopen, []));
        for (var i = 0; i < configuration.Listeners.Count; i++) Resources.Add(ListenerResource.Listen(configuration.Listeners[i], i));
    }

    /// <summary>The resource segment: every open handle with its binding and attachment.</summary>
    public ResourceTable Resources { get; } = new();

    /// <summary>What the process was granted.</summary>
    public WasiConfiguration Configuration => _configuration;

    /// <summary>Nanoseconds added to the monotonic clock, so that it never goes backwards after a move.</summary>
    public long MonotonicOffset { get; set; }

    /// <summary>The monotonic clock as the guest reads it now.</summary>
    public long MonotonicNanoseconds => (long)Now(ClockMonotonic);

    /// <summary>Continues the guest's monotonic clock from <paramref name="nanoseconds"/> (its value when the process was captured).</summary>
    public void ContinueMonotonicClockFrom(long nanoseconds) => MonotonicOffset += nanoseconds - MonotonicNanoseconds;

    private static byte[] NullTerminated(string text) => [.. Encoding.UTF8.GetBytes(text), 0];

    /// <summary>Defines every preview1 function on <paramref name="linker"/>.</summary>
    public void Define(Linker linker)
    {
        Define(linker, "args_get", "ii", (c, a) => WriteStrings(c, _arguments, a[0], a[1]));
        Define(linker, "args_sizes_get", "ii", (c, a) => WriteSizes(c, _arguments, a[0], a[1]));
        Define(linker, "environ_get", "ii", (c, a) => WriteStrings(c, _environment, a[0], a[1]));
        Define(linker, "environ_sizes_get", "ii", (c, a) => WriteSizes(c, _environment, a[0], a[1]));
        Define(linker, "clock_res_get", "ii", ClockResGet);
        Define(linker, "clock_time_get", "iIi", ClockTimeGet);
        Define(linker, "random_get", "ii", (c, a) =>
        {
            _configuration.Random(new GuestMemory(c.Memory).Slice(a[0], a[1]));
            return Errno.Success;
        });
        Define(linker, "sched_yield", "", (_, _) =>
        {
            Thread.Yield();
            return Errno.Success;
        });
        Define(linker, "proc_raise", "i", (_, _) => Errno.NoSys);
        linker.DefineFunction(ModuleName, "proc_exit", new FuncType([ValType.I32], []),
            (_, arguments, _) => throw new ProcessExitException((int)(uint)arguments[0]));
        Define(linker, "poll_oneoff", "iiii", PollOneoff);
        DefineFileDescriptorFunctions(linker);
        DefinePathFunctions(linker);
        DefineSocketFunctions(linker);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, FuncType> Signatures = new();

    /// <summary>Every function this host provides (besides proc_exit), with its type: all return an errno.</summary>
    public static IReadOnlyDictionary<string, FuncType> Functions
    {
        get
        {
            if (Signatures.IsEmpty)
            {
                using var process = new WasiProcess(new WasiConfiguration());
                process.Define(new Linker());
            }
            return Signatures;
        }
    }

    /// <summary>One function: signature letters i (i32) and I (i64) for the parameters; the result is always an errno.</summary>
    private static void Define(Linker linker, string name, string signature, Function body)
    {
        var parameters = signature.Select(letter => letter == 'I' ? ValType.I64 : ValType.I32).ToArray();
        var type = new FuncType(parameters, [ValType.I32]);
        Signatures[name] = type;
        linker.DefineFunction(ModuleName, name, type, (context, arguments, results) =>
        {
            Errno errno;
            try
            {
                errno = body(context, arguments);
            }
            catch (WasiError error)
            {
                errno = error.Errno;
            }
            catch (Exception failure) when (failure is IOException or UnauthorizedAccessException or SocketException)
            {
                errno = ErrnoOf(failure);
            }
            results[0] = (ulong)errno;
        });
    }

    internal static Errno ErrnoOf(Exception failure) => failure switch
    {
        FileNotFoundException or DirectoryNotFoundException => Errno.NoEntry,
        UnauthorizedAccessException => Errno.Access,
        PathTooLongException => Errno.NameTooLong,
        SocketException { SocketErrorCode: SocketError.ConnectionReset } => Errno.ConnectionReset,
        SocketException { SocketErrorCode: SocketError.WouldBlock } => Errno.AgainLater,
        SocketException { SocketErrorCode: SocketError.NotConnected } => Errno.NotConnected,
        SocketException { SocketErrorCode: SocketError.Shutdown } => Errno.Pipe,
        _ => Errno.Io,
    };

    private static Errno WriteStrings(HostCallContext context, byte[][] strings, ulong pointers, ulong buffer)
    {
        var memory = new GuestMemory(context.Memory);
        foreach (var text in strings)
        {
            memory.WriteU32(pointers, (uint)buffer);
            text.CopyTo(memory.Slice(buffer, (ulong)text.Length));
            pointers += 4;
            buffer += (ulong)text.Length;
        }
        return Errno.Success;
    }

    private static Errno WriteSizes(HostCallContext context, byte[][] strings, ulong count, ulong size)
    {
        var memory = new GuestMemory(context.Memory);
        memory.WriteU32(count, (uint)strings.Length);
        memory.WriteU32(size, (uint)strings.Sum(s => s.Length));
        return Errno.Success;
    }

    private const uint ClockRealtime = 0, ClockMonotonic = 1, ClockProcessCpu = 2, ClockThreadCpu = 3;

    private static Errno ClockResGet(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var resolution = (uint)a[0] switch
        {
            ClockRealtime => 1_000UL,
            ClockMonotonic => Math.Max(1UL, 1_000_000_000UL / (ulong)Stopwatch.Frequency),
            ClockProcessCpu or ClockThreadCpu => 1_000UL,
            _ => throw new WasiError(Errno.Invalid),
        };
        new GuestMemory(context.Memory).WriteU64(a[1], resolution);
        return Errno.Success;
    }

    /// <summary>Nanoseconds of a clock; the CPU clocks report the process's CPU time (thread time is not tracked separately).</summary>
    private ulong Now(uint clock) => clock switch
    {
        ClockRealtime => (ulong)(DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100,
        ClockMonotonic => (ulong)(Stopwatch.GetElapsedTime(_monotonicStart).Ticks * 100 + MonotonicOffset),
        ClockProcessCpu or ClockThreadCpu => (ulong)Environment.CpuUsage.TotalTime.Ticks * 100,
        _ => throw new WasiError(Errno.Invalid),
    };

    private Errno ClockTimeGet(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        new GuestMemory(context.Memory).WriteU64(a[2], Now((uint)a[0]));
        return Errno.Success;
    }

    private const int SubscriptionSize = 48, EventSize = 32;
    private const byte EventClock = 0, EventFdRead = 1, EventFdWrite = 2;

    /// <summary>
    /// Waits for the earliest clock subscription unless a descriptor is ready first. Files and output streams
    /// are always ready; sockets are polled; stdin is reported ready (a read then blocks).
    /// </summary>
    private Errno PollOneoff(HostCallContext context, ReadOnlySpan<ulong> a)
    {
        var count = (uint)a[2];
        if (count == 0) return Errno.Invalid;
        // A poll that suspended and is now made again keeps its first start, so relative timeouts do not restart.
        var start = _suspendedPollStart ?? Stopwatch.GetTimestamp();
        while (true)
        {
            var memory = new GuestMemory(context.Memory);
            memory.Slice(a[0], (ulong)count * SubscriptionSize);
            memory.Slice(a[1], (ulong)count * EventSize);
            var events = 0u;
            var wait = long.MaxValue;
            for (var i = 0u; i < count; i++)
            {
                var subscription = a[0] + i * SubscriptionSize;
                var tag = memory.Slice(subscription + 8, 1)[0];
                var error = Errno.Success;
                ulong available = 0;
                if (tag == EventClock)
                {
                    var timeout = (long)Math.Min(memory.ReadU64(subscription + 24), long.MaxValue);
                    var absolute = (memory.Slice(subscription + 40, 2)[0] & 1) != 0;
                    var remaining = absolute
                        ? timeout - (long)Now(memory.ReadU32(subscription + 16))
                        : timeout - Stopwatch.GetElapsedTime(start).Ticks * 100;
                    if (remaining > 0)
                    {
                        wait = Math.Min(wait, remaining);
                        continue;
                    }
                }
                else if (tag is EventFdRead or EventFdWrite)
                {
                    (error, available) = Readiness(memory.ReadU32(subscription + 16), tag == EventFdRead);
                    if (error == Errno.AgainLater)
                    {
                        wait = Math.Min(wait, 1_000_000);
                        continue;
                    }
                }
                else
                {
                    return Errno.Invalid;
                }
                var output = a[1] + events * EventSize;
                memory.Slice(output, EventSize).Clear();
                memory.WriteU64(output, memory.ReadU64(subscription));
                memory.WriteU16(output + 8, (ushort)error);
                memory.WriteU8(output + 10, tag);
                memory.WriteU64(output + 16, available);
                events++;
            }
            if (events > 0)
            {
                _suspendedPollStart = null;
                memory.WriteU32(a[3], events);
                return Errno.Success;
            }
            var pause = TimeSpan.FromTicks(Math.Max(1, Math.Min(wait, 50_000_000) / 100));
            if (_configuration.SuspendInsteadOfBlocking)
            {
                _suspendedPollStart = start;
                context.Suspend(DateTime.UtcNow + pause);
                return Errno.Success;
            }
            PreciseSleep.For(pause);
        }
    }

    private long? _suspendedPollStart;

    private (Errno, ulong) Readiness(uint fd, bool read)
    {
        if (!Resources.TryGet(fd, out var resource)) return (Errno.BadFd, 0);
        return resource switch
        {
            StreamSocketResource socket when read => socket.Socket.Poll(0, SelectMode.SelectRead) ? (Errno.Success, (ulong)socket.Socket.Available) : (Errno.AgainLater, 0),
            ListenerResource listener when read => listener.Socket.Poll(0, SelectMode.SelectRead) ? (Errno.Success, 0UL) : (Errno.AgainLater, 0),
            _ => (Errno.Success, 0UL),
        };
    }

    public void Dispose() => Resources.Dispose();
}
