namespace Ferry.Wasm.Validation;

/// <summary>The spec's validation algorithm. Implementation pending (validator helper).</summary>
public static class Validator
{
    public static void Validate(Module module) => throw new InvalidModuleException("validator not written yet", "module");
}
