using System.Buffers.Binary;
using System.Numerics;

namespace Ferry.Mobility.Snapshots;

/// <summary>CRC-32C (Castagnoli) over spans, with the CPU's CRC instruction where there is one.</summary>
public struct Crc32C
{
    private uint _state = ~0u;

    public Crc32C()
    {
    }

    public readonly uint Value => ~_state;

    public void Append(ReadOnlySpan<byte> data)
    {
        var state = _state;
        while (data.Length >= 8)
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (var b in data) state = BitOperations.Crc32C(state, b);
        _state = state;
    }

    public static uint Of(ReadOnlySpan<byte> data)
    {
        var crc = new Crc32C();
        crc.Append(data);
        return crc.Value;
    }
}
