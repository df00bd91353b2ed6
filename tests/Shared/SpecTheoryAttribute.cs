namespace Ferry.Tests.Shared;

/// <summary>A theory that reports itself skipped, with the reason, where the spec suite is not beside the checkout.</summary>
public sealed class SpecTheoryAttribute : TheoryAttribute
{
    public SpecTheoryAttribute()
    {
        if (SpecSuite.Directory is null)
            Skip = "the WebAssembly spec suite (shared/wasm-testsuite beside the checkout, or $FERRY_WASM_TESTSUITE) is absent";
    }
}

/// <summary>A fact that reports itself skipped, with the reason, where the spec suite is not beside the checkout.</summary>
public sealed class SpecFactAttribute : FactAttribute
{
    public SpecFactAttribute()
    {
        if (SpecSuite.Directory is null)
            Skip = "the WebAssembly spec suite (shared/wasm-testsuite beside the checkout, or $FERRY_WASM_TESTSUITE) is absent";
    }
}
