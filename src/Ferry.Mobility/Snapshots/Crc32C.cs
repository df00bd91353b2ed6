using System.Buffers.Binary;
using System.Numerics;

namespace Ferry.Mobility.Snapshots;

/// <summary>CRC-32C (Castagnoli) over spans, with the CPU's CRC instruction where there is one.</summary>
public struct Crc32C
{
    // The polynomial, bit-reflected as the CRC instruction uses it.
    private const uint Polynomial = 0x82F63B78;
    // From this length on, three independent lanes keep the CRC unit busy (one lane waits on each result).
    private const int LaneThreshold = 16 << 10;

    private uint _state = ~0u;

    public Crc32C()
    {
    }

    public readonly uint Value => ~_state;

    public void Append(ReadOnlySpan<byte> data) => _state = data.Length >= LaneThreshold ? ThreeLanes(_state, data) : OneLane(_state, data);

    public static uint Of(ReadOnlySpan<byte> data)
    {
        var crc = new Crc32C();
        crc.Append(data);
        return crc.Value;
    }

    private static uint OneLane(uint state, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (var b in data) state = BitOperations.Crc32C(state, b);
        return state;
    }

    /// <summary>
    /// Three thirds at once, then joined: the register is linear, so register(s, A‖B) = register(s, A)·x^(8|B|) ⊕ register(0, B).
    /// </summary>
    private static uint ThreeLanes(uint state, ReadOnlySpan<byte> data)
    {
        var lane = data.Length / 3 & ~7;
        var a = data[..lane];
        var b = data.Slice(lane, lane);
        var c = data[(2 * lane)..];
        uint ra = state, rb = 0, rc = 0;
        for (var at = 0; at < lane; at += 8)
        {
            ra = BitOperations.Crc32C(ra, BinaryPrimitives.ReadUInt64LittleEndian(a[at..]));
            rb = BitOperations.Crc32C(rb, BinaryPrimitives.ReadUInt64LittleEndian(b[at..]));
            rc = BitOperations.Crc32C(rc, BinaryPrimitives.ReadUInt64LittleEndian(c[at..]));
        }
        rc = OneLane(rc, c[lane..]);
        var tail = c.Length;
        return Multiply(Multiply(ra, PowerOfX(lane)) ^ rb, PowerOfX(tail)) ^ rc;
    }

    /// <summary>x^(8·bytes) modulo the polynomial, by squaring.</summary>
    private static uint PowerOfX(long bytes)
    {
        var result = 1u << 31;
        var square = 1u << 23;
        for (var n = bytes; n > 0; n >>= 1)
        {
            if ((n & 1) != 0) result = Multiply(result, square);
            square = Multiply(square, square);
        }
        return result;
    }

    /// <summary>a·b modulo the polynomial, both bit-reflected (bit 31 is x^0).</summary>
    private static uint Multiply(uint a, uint b)
    {
        var product = 0u;
        for (var bit = 1u << 31; bit != 0; bit >>= 1)
        {
            if ((a & bit) != 0) product ^= b;
            b = (b & 1) != 0 ? b >> 1 ^ Polynomial : b >> 1;
        }
        return product;
    }
}
