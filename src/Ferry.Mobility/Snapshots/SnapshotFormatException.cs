namespace Ferry.Mobility.Snapshots;

/// <summary>A snapshot that cannot be read: truncated, corrupt, of another version, or not matching its module.</summary>
public sealed class SnapshotFormatException(string message) : Exception(message);
