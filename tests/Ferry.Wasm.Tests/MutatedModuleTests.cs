using System.Diagnostics;
using Ferry.Tests.Shared;
using Xunit.Abstractions;

namespace Ferry.Wasm.Tests;

/// <summary>Bad input is contained: mutated spec modules only ever produce Ferry's typed errors.</summary>
public sealed class MutatedModuleTests(ITestOutputHelper output)
{
    private const int Mutants = 100_000;

    [SpecFact]
    public void Mutated_spec_modules_fail_only_with_typed_errors_within_a_second_each()
    {
        var originals = SpecSuite.RunnableFiles()
            .SelectMany(file => Directory.GetFiles(Path.GetDirectoryName(SpecSuite.Convert(file))!, "*.wasm"))
            .Select(File.ReadAllBytes)
            .Where(bytes => bytes.Length > 8)
            .ToArray();
        Assert.NotEmpty(originals);

        var random = new Random(20261122);
        int accepted = 0, malformed = 0, invalid = 0, unsupported = 0;
        var slowest = TimeSpan.Zero;
        var clock = new Stopwatch();
        for (var i = 0; i < Mutants; i++)
        {
            var mutant = Mutate(originals[random.Next(originals.Length)], random);
            clock.Restart();
            try
            {
                Module.Load(mutant);
                accepted++;
            }
            catch (MalformedModuleException)
            {
                malformed++;
            }
            catch (InvalidModuleException)
            {
                invalid++;
            }
            catch (UnsupportedFeatureException)
            {
                unsupported++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutant {i} ({Convert.ToHexString(mutant.AsSpan(0, Math.Min(64, mutant.Length)))}...) threw {e.GetType().Name}: {e.Message}");
            }
            if (clock.Elapsed > slowest) slowest = clock.Elapsed;
        }
        output.WriteLine($"{Mutants} mutants of {originals.Length} spec modules: {accepted} accepted, {malformed} malformed, {invalid} invalid, {unsupported} unsupported; slowest {slowest.TotalMilliseconds:F1} ms");
        Assert.True(slowest < TimeSpan.FromSeconds(1), $"one module took {slowest.TotalMilliseconds:F0} ms");
        Assert.True(malformed > 0 && invalid > 0, "the mutations should reach both the decoder and the validator");
    }

    /// <summary>One of: flip bits, truncate, insert bytes, delete bytes, or overwrite a byte with a LEB128 continuation.</summary>
    private static byte[] Mutate(byte[] original, Random random)
    {
        var bytes = new List<byte>(original);
        var edits = random.Next(1, 4);
        for (var e = 0; e < edits && bytes.Count > 0; e++)
        {
            var at = random.Next(bytes.Count);
            switch (random.Next(5))
            {
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 2:
                    bytes.Insert(at, (byte)random.Next(256));
                    break;
                case 3:
                    bytes.RemoveAt(at);
                    break;
                default:
                    bytes[at] = (byte)(0x80 | random.Next(128));
                    break;
            }
        }
        return [.. bytes];
    }
}
