using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Ferry.Mobility.Snapshots;

/// <summary>CRC-32C (Castagnoli) over spans, with the CPU's CRC instruction where there is one.</summary>
public struct Crc32C
{
    // The polynomial, bit-reflected as the CRC instruction uses it.
    private const uint Polynomial = 0x82F63B78;
    // From this length on, three independent lanes keep the CRC unit busy (one lane waits on each result): a 4 KiB
    // memory frame, the piece a gathered Frames message checksums, takes 0.7 µs in one lane.
    private const int LaneThreshold = 2 << 10;
    // Lanes up to this long keep their shift constant, so that joining them costs two multiplications, not a squaring chain.
    private const int MaxCachedLane = 64 << 10;
    private static readonly uint[] LaneShifts = new uint[(MaxCachedLane >> 3) + 1];
    // The CRC instruction multiplies what it reads by x^32 and a carry-less product of two reflected values carries one more x.
    private const int CarrylessShiftBits = 33;

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

    // Optimized at once: a migration's first frames must not be checksummed by tier-0 code, 8 times slower.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static uint OneLane(uint state, ReadOnlySpan<byte> data)
    {
        ref var start = ref MemoryMarshal.GetReference(data);
        var whole = data.Length & ~7;
        for (var at = 0; at < whole; at += 8) state = BitOperations.Crc32C(state, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, at)));
        foreach (var b in data[whole..]) state = BitOperations.Crc32C(state, b);
        return state;
    }

    /// <summary>
    /// Three equal lanes at once, joined, then the rest: the register is linear, so register(s, A‖B) = register(s, A)·x^(8|B|) ⊕ register(0, B).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static uint ThreeLanes(uint state, ReadOnlySpan<byte> data)
    {
        var lane = data.Length / 3 & ~7;
        // Unchecked reads (native order is little-endian on every .NET platform): the lanes lie within data by construction,
        // and bounds checks cost a third of the loop.
        ref var a = ref MemoryMarshal.GetReference(data);
        ref var b = ref Unsafe.Add(ref a, lane);
        ref var c = ref Unsafe.Add(ref a, 2 * lane);
        uint ra = state, rb = 0, rc = 0;
        for (var at = 0; at < lane; at += 8)
        {
            ra = BitOperations.Crc32C(ra, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref a, at)));
            rb = BitOperations.Crc32C(rb, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b, at)));
            rc = BitOperations.Crc32C(rc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, at)));
        }
        var shift = LaneShift(lane);
        return OneLane(Shift(Shift(ra, shift) ^ rb, shift) ^ rc, data[(3 * lane)..]);
    }

    /// <summary>
    /// <paramref name="register"/>·x^(8·lane) modulo the polynomial, given the lane's <see cref="LaneShift"/>: with a
    /// carry-less multiplier, one multiplication and one CRC instruction (the bitwise product cost half a 4 KiB frame's lanes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shift(uint register, uint shift)
    {
        if (!Pclmulqdq.IsSupported) return Multiply(register, shift);
        var product = Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar((ulong)register), Vector128.CreateScalar((ulong)shift), 0);
        return BitOperations.Crc32C(0u, product.ToScalar());
    }

    /// <summary>
    /// The constant <see cref="Shift"/> multiplies by to move a register past <paramref name="lane"/> bytes: x^(8·lane), less
    /// the x^33 the carry-less path adds. Computed once per lane length up to <see cref="MaxCachedLane"/>.
    /// </summary>
    private static uint LaneShift(int lane)
    {
        var bits = 8L * lane - (Pclmulqdq.IsSupported ? CarrylessShiftBits : 0);
        if (lane > MaxCachedLane) return PowerOfX(bits);
        // Never 0 once computed (the polynomial is irreducible), and a racing thread computes the same value.
        ref var cached = ref LaneShifts[lane >> 3];
        if (cached == 0) cached = PowerOfX(bits);
        return cached;
    }

    /// <summary>x^<paramref name="bits"/> modulo the polynomial, by squaring.</summary>
    private static uint PowerOfX(long bits)
    {
        var result = 1u << 31;
        var square = 1u << 30;
        for (var n = bits; n > 0; n >>= 1)
        {
            if ((n & 1) != 0) result = Multiply(result, square);
            square = Multiply(square, square);
        }
        return result;
    }

    /// <summary>a·b modulo the polynomial, both bit-reflected (bit 31 is x^0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static uint Multiply(uint a, uint b)
    {
        // Branch-free: the bits of a are data, and a mispredicted branch per bit cost more than the lanes saved on a 4 KiB frame.
        var product = 0u;
        for (var bit = 31; bit >= 0; bit--)
        {
            product ^= b & (0u - (a >> bit & 1));
            b = b >> 1 ^ (Polynomial & (0u - (b & 1)));
        }
        return product;
    }
}
