using System.Text;
using Ferry.Engine;
using Ferry.Tests.Shared;
using Ferry.Wasi.Sandbox;
using Ferry.Wasm;

namespace Ferry.Wasi.Tests;

/// <summary>A guest passing wild pointers or lengths to any WASI function gets EFAULT (or another errno), never a host exception.</summary>
public sealed class WildPointerTests
{
    private const uint Wild = 0xFFFF_FFF0;

    /// <summary>A module importing every function and exporting a caller of each, with every i32 after the first set to <paramref name="wild"/>.</summary>
    private static byte[] Module(uint descriptor, uint wild)
    {
        var text = new StringBuilder("(module\n");
        var index = 0;
        foreach (var (name, type) in WasiProcess.Functions)
        {
            var parameters = string.Join(' ', type.Parameters.Select(p => p.Name()));
            text.AppendLine($"  (import \"{WasiProcess.ModuleName}\" \"{name}\" (func $f{index} (param {parameters}) (result i32)))");
            index++;
        }
        text.AppendLine("  (memory (export \"memory\") 1)");
        index = 0;
        foreach (var (name, type) in WasiProcess.Functions)
        {
            var arguments = string.Join(' ', type.Parameters.Select((p, i) => p == ValType.I64
                ? "(i64.const 0x7FFFFFFFFFFFFFF0)"
                : $"(i32.const {(i == 0 ? descriptor : wild)})"));
            text.AppendLine($"  (func (export \"{name}\") (result i32) (call $f{index} {arguments}))");
            index++;
        }
        text.AppendLine(")");
        return Wat.ToWasm(text.ToString());
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(3u)]
    [InlineData(Wild)]
    public void Every_function_answers_wild_pointers_with_an_errno_or_a_trap(uint descriptor)
    {
        var directory = Directory.CreateTempSubdirectory("ferry-wild-");
        try
        {
            File.WriteAllText(Path.Combine(directory.FullName, "file"), "x");
            using var wasi = new WasiProcess(new WasiConfiguration
            {
                Arguments = ["wild", "pointers"],
                Environment = [new("A", "B")],
                Preopens = [new Preopen(directory.FullName, "/data")],
            });
            var store = new Store();
            var linker = new Linker();
            wasi.Define(linker);
            var instance = linker.Instantiate(store, Ferry.Wasm.Module.Load(Module(descriptor, Wild)));
            var faults = 0;
            foreach (var name in WasiProcess.Functions.Keys)
            {
                try
                {
                    var errno = store.Invoke(instance.GetFunction(name))[0].AsI32();
                    Assert.InRange(errno, 0, 76);
                    if (errno == (int)Errno.Fault) faults++;
                }
                catch (TrapException trap)
                {
                    Assert.NotEqual(TrapKind.HostError, trap.Kind);
                }
            }
            Assert.True(faults > 0, "no function reached its wild pointer");
        }
        finally
        {
            directory.Delete(true);
        }
    }

    [Fact]
    public void The_core_functions_report_efault_for_a_wild_output_pointer()
    {
        using var wasi = new WasiProcess(new WasiConfiguration { Arguments = ["x"] });
        var store = new Store();
        var linker = new Linker();
        wasi.Define(linker);
        var instance = linker.Instantiate(store, Ferry.Wasm.Module.Load(Module(1, Wild)));
        foreach (var name in new[] { "args_get", "args_sizes_get", "environ_sizes_get", "clock_time_get", "random_get", "fd_write", "fd_fdstat_get", "fd_filestat_get" })
        {
            Assert.Equal((int)Errno.Fault, store.Invoke(instance.GetFunction(name))[0].AsI32());
        }
    }
}
