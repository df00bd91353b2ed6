using System.CommandLine;
using System.Diagnostics;
using System.Text;
using Ferry.Engine;
using Ferry.Wasm;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry demo`: first a three-node cluster on loopback answering a query where the data lives (weak mobility) and
/// moving a running process live with each strategy; then the embedded guest moved, mid-run, from one store to a fresh one after every slice of instructions
/// (strong mobility), its result checked against an uninterrupted run.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var limit = new Option<uint>("--limit") { Description = "Count primes below this number", DefaultValueFactory = _ => 300_000 };
        var slice = new Option<long>("--slice") { Description = "Instructions to run between moves", DefaultValueFactory = _ => 25_000_000 };
        var command = new Command("demo", "Three nodes on loopback answer a query where the data lives and move a running process live; then a guest moves between stores mid-run") { limit, slice };
        command.SetAction(async (result, _) =>
        {
            var weak = await ClusterDemo.Run(Embedded("query.wasm"), Embedded("dirtier.wasm"));
            Console.WriteLine();
            return Run(result.GetValue(limit), result.GetValue(slice)) | weak;
        });
        return command;
    }

    private static int Run(uint limit, long slice)
    {
        if (slice <= 0)
        {
            Console.Error.WriteLine("ferry demo: --slice must be positive");
            return 2;
        }
        var module = Module.Load(Embedded("demo.wasm"));
        Console.WriteLine($"3. strong mobility: module {module.Hash[..16]}, {module.Bytes.Length} bytes, counting primes below {limit:N0}");
        Console.WriteLine($"  the process moves to a fresh store after every {slice:N0} instructions");

        var host = 'A';
        var (store, instance) = Instantiate(module, () => host);
        var execution = store.Start(instance.GetFunction("run"), Value.I32((int)limit));
        var moves = 0;
        long movedBytes = 0;
        var clock = Stopwatch.StartNew();
        while (execution.Run(slice) == ExecutionStatus.OutOfFuel)
        {
            var state = execution.Capture();
            var instanceState = InstanceState.Capture(instance);
            var memory = instance.Memory!;
            var frames = NonZeroFrames(memory);
            movedBytes += frames.Count * (long)Ferry.Engine.Memory.LinearMemory.FrameSize + state.Stack.Length * 8L;

            host = host == 'Z' ? 'A' : (char)(host + 1);
            var pages = memory.Pages;
            (store, instance) = Instantiate(module, () => host);
            var target = instance.Memory!;
            if (target.Pages < pages) target.Grow(pages - target.Pages);
            foreach (var frame in frames) target.WriteFrame(frame, memory.Frame(frame));
            instanceState.RestoreInto(instance);
            execution = Execution.Restore(instance, state);
            moves++;
            Console.WriteLine($"  moved to store {host} at instruction {state.InstructionsExecuted:N0}: {state.Frames.Length} frames, {frames.Count} non-zero memory frames of {memory.FrameCount}");
        }
        clock.Stop();
        if (execution.Status != ExecutionStatus.Finished)
        {
            Console.Error.WriteLine($"ferry demo: the guest stopped with {execution.Status}: {execution.Trap?.Message}");
            return 1;
        }
        var moved = execution.Results[0].AsI32();

        var (referenceStore, referenceInstance) = Instantiate(module, () => '-', quiet: true);
        var uninterrupted = referenceStore.Invoke(referenceInstance.GetFunction("run"), Value.I32((int)limit))[0].AsI32();
        Console.WriteLine($"result {moved:N0} primes after {moves} moves and {execution.InstructionsExecuted:N0} instructions in {clock.ElapsedMilliseconds:N0} ms; {movedBytes / 1024.0:N0} KiB of state moved");
        Console.WriteLine(moved == uninterrupted
            ? $"an uninterrupted run gives {uninterrupted:N0}: identical"
            : $"MISMATCH: an uninterrupted run gives {uninterrupted:N0}");
        return moved == uninterrupted ? 0 : 1;
    }

    private static (Store, Instance) Instantiate(Module module, Func<char> host, bool quiet = false)
    {
        var store = new Store();
        var linker = new Linker();
        linker.DefineFunction("ferry", "print", new FuncType([ValType.I32, ValType.I32], []), (context, arguments, _) =>
        {
            if (quiet) return;
            var text = Encoding.UTF8.GetString(context.Memory!.Slice((uint)arguments[0], (int)(uint)arguments[1]));
            Console.WriteLine($"  [store {host()}] {text}");
        });
        return (store, linker.Instantiate(store, module));
    }

    private static List<long> NonZeroFrames(Ferry.Engine.Memory.LinearMemory memory)
    {
        var frames = new List<long>();
        for (var frame = 0L; frame < memory.FrameCount; frame++)
        {
            if (memory.Frame(frame).IndexOfAnyExcept((byte)0) >= 0) frames.Add(frame);
        }
        return frames;
    }

    private static byte[] Embedded(string name)
    {
        using var stream = typeof(DemoCommand).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the demo guest {name} is missing from this build of ferry");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
