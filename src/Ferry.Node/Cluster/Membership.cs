using System.Collections.Concurrent;
using System.Net.Http.Json;

namespace Ferry.Node.Cluster;

public enum MemberState
{
    Alive,
    Suspect,
    Down,
}

/// <summary>What a node publishes about its load with every heartbeat.</summary>
public sealed record NodeLoad(int RunQueue, int Running, double CpuUtilization, long MemoryBytes, long MemoryLimitBytes);

/// <summary>One node as this node sees it.</summary>
public sealed record Member(string Name, string Address, MemberState State, DateTimeOffset LastHeard, NodeLoad? Load);

/// <summary>A heartbeat: who sends it, its load, and the members it knows (so views converge).</summary>
public sealed record Heartbeat(string Name, string Address, NodeLoad Load, List<MemberAddress> Members);

public sealed record MemberAddress(string Name, string Address);

/// <summary>
/// The cluster as this node sees it: nodes join through any member and then exchange heartbeats; one not heard
/// from for <see cref="SuspectAfter"/> is suspect, for <see cref="DownAfter"/> down, and alive again when heard.
/// </summary>
public sealed class Membership : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Member> _members = new();
    private readonly string _self;
    private readonly string _address;
    private readonly Func<NodeLoad> _load;
    private readonly HttpClient _http;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public Membership(string self, string address, string key, Func<NodeLoad> load, TimeSpan heartbeat, TimeSpan suspectAfter, TimeSpan downAfter)
    {
        _self = self;
        _address = address;
        _load = load;
        HeartbeatInterval = heartbeat;
        SuspectAfter = suspectAfter;
        DownAfter = downAfter;
        _http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        _members[self] = new Member(self, address, MemberState.Alive, DateTimeOffset.UtcNow, load());
    }

    public TimeSpan HeartbeatInterval { get; }
    public TimeSpan SuspectAfter { get; }
    public TimeSpan DownAfter { get; }

    public IReadOnlyList<Member> Members =>
        [.. _members.Values.Select(m => m.Name == _self ? m with { LastHeard = DateTimeOffset.UtcNow, Load = _load(), State = MemberState.Alive } : m).OrderBy(m => m.Name, StringComparer.Ordinal)];

    public Member? Find(string name) => Members.FirstOrDefault(m => m.Name == name);

    /// <summary>Joins the cluster through <paramref name="seed"/> (any member), learning every member it knows.</summary>
    public async Task JoinAsync(string seed)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var response = await _http.PostAsJsonAsync(new Uri(new Uri(seed), "/v1/cluster/heartbeats"), MakeHeartbeat(), timeout.Token);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"joining through {seed} failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var view = await response.Content.ReadFromJsonAsync<List<MemberAddress>>() ?? [];
        foreach (var member in view) Learn(member);
    }

    public void Start() => _loop = Task.Run(() => Loop(_stop.Token));

    private Heartbeat MakeHeartbeat() =>
        new(_self, _address, _load(), [.. _members.Values.Select(m => new MemberAddress(m.Name, m.Address))]);

    private void Learn(MemberAddress member)
    {
        if (member.Name == _self) return;
        _members.TryAdd(member.Name, new Member(member.Name, member.Address, MemberState.Alive, DateTimeOffset.UtcNow, null));
    }

    /// <summary>Takes in a heartbeat from another node; returns this node's view of the members.</summary>
    public List<MemberAddress> Receive(Heartbeat heartbeat)
    {
        _members[heartbeat.Name] = new Member(heartbeat.Name, heartbeat.Address, MemberState.Alive, DateTimeOffset.UtcNow, heartbeat.Load);
        foreach (var member in heartbeat.Members) Learn(member);
        return [.. _members.Values.Select(m => new MemberAddress(m.Name, m.Address))];
    }

    private async Task Loop(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var heartbeat = MakeHeartbeat();
            var sends = _members.Values.Where(m => m.Name != _self).Select(m => Send(m, heartbeat, stop)).ToList();
            await Task.WhenAll(sends);
            var now = DateTimeOffset.UtcNow;
            foreach (var member in _members.Values.Where(m => m.Name != _self))
            {
                var silent = now - member.LastHeard;
                var state = silent >= DownAfter ? MemberState.Down : silent >= SuspectAfter ? MemberState.Suspect : MemberState.Alive;
                if (state != member.State) _members[member.Name] = member with { State = state };
            }
            try
            {
                await Task.Delay(HeartbeatInterval, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task Send(Member member, Heartbeat heartbeat, CancellationToken stop)
    {
        // A heartbeat that takes longer than two intervals counts as silence.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(HeartbeatInterval * 2);
        try
        {
            var response = await _http.PostAsJsonAsync(new Uri(new Uri(member.Address), "/v1/cluster/heartbeats"), heartbeat, timeout.Token);
            if (!response.IsSuccessStatusCode) return;
            foreach (var learned in await response.Content.ReadFromJsonAsync<List<MemberAddress>>(timeout.Token) ?? []) Learn(learned);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            // Silence is what marks a member suspect, then down; there is nothing else to do here.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop;
        _http.Dispose();
        _stop.Dispose();
    }
}
