namespace Ferry.Wasm.Tests;

public sealed class UnsupportedFeatureTests
{
    private static readonly byte[] Header = [0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00];

    [Fact]
    public void A_v128_value_type_is_rejected_as_not_supported_yet()
    {
        // Type section: one function type () -> (v128).
        byte[] module = [.. Header, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7B];
        var error = Assert.Throws<UnsupportedFeatureException>(() => Module.Load(module));
        Assert.Equal("SIMD", error.Feature);
        Assert.StartsWith("not supported yet: SIMD", error.Message);
    }

    [Fact]
    public void A_simd_instruction_is_rejected_as_not_supported_yet()
    {
        // One function () -> () whose body is v128.const (0xFD 0x0C ...) drop end.
        byte[] body = [0x00, 0xFD, 0x0C, .. new byte[16], 0x1A, 0x0B];
        byte[] module =
        [
            .. Header,
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
            0x03, 0x02, 0x01, 0x00,
            0x0A, (byte)(body.Length + 2), 0x01, (byte)body.Length, .. body,
        ];
        var error = Assert.Throws<UnsupportedFeatureException>(() => Module.Load(module));
        Assert.Contains("not supported yet: SIMD", error.Message);
    }
}
