using System.Net;
using Ferry.Wasi.Sandbox;

namespace Ferry.Wasi;

/// <summary>What a WASI process is granted: arguments, environment, preopened directories, listening sockets, stdio.</summary>
public sealed class WasiConfiguration
{
    /// <summary>argv, including the program name as argv[0].</summary>
    public List<string> Arguments { get; init; } = [];
    public List<KeyValuePair<string, string>> Environment { get; init; } = [];
    public List<Preopen> Preopens { get; init; } = [];
    /// <summary>Listening sockets to grant, as preopened descriptors after the directories.</summary>
    public List<IPEndPoint> Listeners { get; init; } = [];
    public Stream Stdin { get; init; } = Stream.Null;
    public Stream Stdout { get; init; } = Stream.Null;
    public Stream Stderr { get; init; } = Stream.Null;
    /// <summary>
    /// When a call would wait (poll_oneoff with nothing ready), suspend the execution instead of blocking the thread,
    /// so a scheduler can run other processes meanwhile; the call is made again when the process resumes.
    /// </summary>
    public bool SuspendInsteadOfBlocking { get; init; }
    /// <summary>Source of random_get; cryptographic randomness unless a deterministic one is given.</summary>
    public Action<Span<byte>> Random { get; init; } = System.Security.Cryptography.RandomNumberGenerator.Fill;
}
