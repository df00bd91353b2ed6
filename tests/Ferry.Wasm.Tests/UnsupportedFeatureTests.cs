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

    /// <summary>A module of one function () -> () with <paramref name="body"/> (locals count first), and a one-page memory.</summary>
    private static byte[] WithBody(params byte[] body) =>
    [
        .. Header,
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
        0x03, 0x02, 0x01, 0x00,
        0x05, 0x03, 0x01, 0x00, 0x01,
        0x0A, (byte)(body.Length + 2), 0x01, (byte)body.Length, .. body,
    ];

    [Theory]
    [InlineData(new byte[] { 0x00, 0x12, 0x00, 0x0B }, "0x12: return_call, from the tail-call proposal")]
    [InlineData(new byte[] { 0x00, 0x41, 0x00, 0xFE, 0x10, 0x02, 0x00, 0x1A, 0x0B }, "0xfe: an atomic instruction, from the threads proposal")]
    [InlineData(new byte[] { 0x00, 0x08, 0x00, 0x0B }, "0x08: from the exception-handling proposal")]
    public void An_opcode_of_a_later_proposal_is_malformed_as_the_spec_says_and_the_error_names_the_proposal(byte[] body, string named)
    {
        var error = Assert.Throws<MalformedModuleException>(() => Module.Load(WithBody(body)));
        Assert.Equal("illegal opcode", error.Reason);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void An_unassigned_opcode_is_named_without_a_proposal()
    {
        var error = Assert.Throws<MalformedModuleException>(() => Module.Load(WithBody(0x00, 0x27, 0x0B)));
        Assert.EndsWith("illegal opcode (0x27)", error.Message);
    }

    [Fact]
    public void A_shared_memory_is_malformed_as_the_spec_says_and_the_error_names_the_threads_proposal()
    {
        byte[] module = [.. Header, 0x05, 0x04, 0x01, 0x03, 0x01, 0x01];
        var error = Assert.Throws<MalformedModuleException>(() => Module.Load(module));
        Assert.Equal("integer too large", error.Reason);
        Assert.Contains("limits flag 3: a shared memory, from the threads proposal", error.Message);
    }
}
