using System.CommandLine;
using System.Text.Json;
using Ferry.Mobility.Snapshots;
using Ferry.Wasm;

namespace Ferry.Cli.Commands;

/// <summary>`ferry snapshot inspect`: what a snapshot holds, checked section by section.</summary>
internal static class SnapshotCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "The snapshot" };
        var module = new Option<FileInfo?>("--module") { Description = "The module, when the snapshot does not embed it" };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON" };
        var inspect = new Command("inspect", "Check a snapshot and print its sections, call stack and resources") { file, module, json };
        inspect.SetAction(result => Inspect(result.GetValue(file)!, result.GetValue(module), result.GetValue(json)));
        return new Command("snapshot", "Work with process snapshots") { inspect };
    }

    private static int Inspect(FileInfo file, FileInfo? moduleFile, bool json)
    {
        Snapshot snapshot;
        SnapshotReader reader;
        (uint Pages, int Frames) memory;
        try
        {
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            reader = new SnapshotReader(stream);
            snapshot = reader.ReadState(ResumeCommand.ModuleFinder(file, moduleFile));
            memory = reader.ReadMemory(null, snapshot.Header.MemoryPages);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ProcessRunner.Fail(ExitCodes.Usage, $"cannot read {file}: {e.Message}");
        }
        catch (SnapshotFormatException e)
        {
            return ProcessRunner.Fail(ExitCodes.Usage, $"{file}: {e.Message}");
        }
        var module = Module.Decode(snapshot.Code);
        var frames = snapshot.Execution.Frames.Reverse().Select(f => new
        {
            function = f.FunctionIndex,
            name = module.FunctionName(f.FunctionIndex),
            instruction = f.Instruction,
            afterCall = f.AfterCall,
        }).ToList();
        var report = new
        {
            file = file.FullName,
            bytes = file.Length,
            version = SnapshotLayout.Version,
            module = snapshot.Header.ModuleHash,
            codeEmbedded = snapshot.Header.CodeEmbedded,
            instructionsExecuted = snapshot.Header.InstructionsExecuted,
            capturedAt = DateTimeOffset.FromUnixTimeMilliseconds(snapshot.Header.CapturedAtUnixMilliseconds),
            sections = reader.Sections.Select(s => new { type = s.Type.ToString(), bytes = s.Length }).ToList(),
            memory = new { pages = memory.Pages, nonZeroFrames = memory.Frames, totalFrames = memory.Pages * 16 },
            callStack = frames,
            valueStackSlots = snapshot.Execution.Stack.Length,
            output = new { stdout = snapshot.Output.Stdout, stderr = snapshot.Output.Stderr },
            resources = snapshot.Resources.Descriptors.Select(d => new
            {
                fd = d.Fd,
                kind = d.Kind.ToString(),
                binding = d.Binding.ToString(),
                attachment = d.Attachment.ToString(),
                location = d.Kind switch
                {
                    Ferry.Wasi.Resources.ResourceKind.File => d.Copy is { } copy ? $"a copy of {copy.Length:N0} bytes (its name {d.HostPath} was removed)" : d.HostPath,
                    Ferry.Wasi.Resources.ResourceKind.Directory => string.Join('/', [snapshot.Resources.Preopens[d.PreopenIndex].HostPath, .. d.Components ?? []]),
                    Ferry.Wasi.Resources.ResourceKind.SocketListener => snapshot.Resources.Listeners[d.ListenerIndex],
                    _ => null,
                },
                offset = d.Kind == Ferry.Wasi.Resources.ResourceKind.File ? d.Offset : (long?)null,
            }).ToList(),
            arguments = snapshot.Resources.Arguments,
        };
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        Console.WriteLine($"snapshot {file} ({file.Length:N0} bytes, format {reader.Version}), captured {report.capturedAt:u}");
        Console.WriteLine($"module      sha256:{snapshot.Header.ModuleHash} ({(snapshot.Header.CodeEmbedded ? $"embedded, {snapshot.Code.Length:N0} bytes" : "not embedded")})");
        Console.WriteLine($"progress    {snapshot.Header.InstructionsExecuted:N0} instructions executed");
        Console.WriteLine("sections    " + string.Join(", ", reader.Sections.Select(s => $"{s.Type} {s.Length:N0} B")));
        Console.WriteLine($"memory      {memory.Pages} pages; {memory.Frames:N0} non-zero 4 KiB frames of {memory.Pages * 16:N0}");
        Console.WriteLine($"call stack  {frames.Count} frames, {snapshot.Execution.Stack.Length:N0} value-stack slots, innermost first:");
        foreach (var frame in frames)
            Console.WriteLine($"            function {frame.function} {(frame.name is null ? "" : $"'{frame.name}' ")}{(frame.afterCall ? "after the call at" : "at")} instruction {frame.instruction}");
        Console.WriteLine($"output      stdout {snapshot.Output.Stdout:N0} bytes, stderr {snapshot.Output.Stderr:N0} bytes written so far");
        Console.WriteLine($"arguments   {string.Join(' ', snapshot.Resources.Arguments)}");
        Console.WriteLine("resources");
        foreach (var r in report.resources)
            Console.WriteLine($"            fd {r.fd,-3} {r.kind,-14} by {r.binding}, {r.attachment}{(r.location is null ? "" : $"  {r.location}")}{(r.offset is { } o ? $" @ {o:N0}" : "")}");
        return 0;
    }
}
