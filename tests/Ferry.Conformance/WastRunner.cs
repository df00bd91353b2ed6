using System.Text.Json;
using Ferry.Engine;
using Ferry.Wasm;

namespace Ferry.Conformance;

/// <summary>The outcome of one command.</summary>
/// <param name="TextModule">An assert_malformed given in the text format, which Ferry (binary only) rejects at the magic header.</param>
internal sealed record CommandResult(int Line, string Type, bool Passed, string? Failure, bool TextModule);

/// <summary>Executes the JSON command list that wast2json writes for one .wast file against Ferry's engine.</summary>
internal sealed class WastRunner
{
    private readonly string _directory;
    private readonly Store _store = new();
    private readonly Linker _linker = new();
    private readonly Dictionary<string, Instance> _named = [];
    private Instance? _current;

    public WastRunner(string jsonPath)
    {
        _directory = Path.GetDirectoryName(jsonPath)!;
        DefineSpectest();
    }

    public static List<CommandResult> RunFile(string jsonPath)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(jsonPath));
        var runner = new WastRunner(jsonPath);
        var results = new List<CommandResult>();
        foreach (var command in document.RootElement.GetProperty("commands").EnumerateArray())
        {
            var type = command.GetProperty("type").GetString()!;
            var line = command.GetProperty("line").GetInt32();
            string? failure;
            try
            {
                failure = runner.Execute(type, command);
            }
            catch (Exception e)
            {
                failure = $"unexpected {e.GetType().Name}: {e.Message}";
            }
            var textModule = command.TryGetProperty("module_type", out var moduleType) && moduleType.GetString() == "text";
            results.Add(new CommandResult(line, type, failure is null, failure, textModule));
        }
        return results;
    }

    /// <summary>The spec's "spectest" host module.</summary>
    private void DefineSpectest()
    {
        void Print(string name, params ValType[] parameters) =>
            _linker.DefineFunction("spectest", name, new FuncType(parameters, []), (_, _, _) => { });
        Print("print");
        Print("print_i32", ValType.I32);
        Print("print_i64", ValType.I64);
        Print("print_f32", ValType.F32);
        Print("print_f64", ValType.F64);
        Print("print_i32_f32", ValType.I32, ValType.F32);
        Print("print_f64_f64", ValType.F64, ValType.F64);
        _linker.Define("spectest", "global_i32", Extern.From(_store.CreateGlobal(new GlobalType(ValType.I32, false), Value.I32(666))));
        _linker.Define("spectest", "global_i64", Extern.From(_store.CreateGlobal(new GlobalType(ValType.I64, false), Value.I64(666))));
        _linker.Define("spectest", "global_f32", Extern.From(_store.CreateGlobal(new GlobalType(ValType.F32, false), Value.F32(666.6f))));
        _linker.Define("spectest", "global_f64", Extern.From(_store.CreateGlobal(new GlobalType(ValType.F64, false), Value.F64(666.6))));
        _linker.Define("spectest", "table", Extern.From(_store.CreateTable(new TableType(ValType.FuncRef, new Limits(10, 20)))));
        _linker.Define("spectest", "memory", Extern.From(_store.CreateMemory(new MemoryType(new Limits(1, 2)))));
    }

    /// <summary>Runs one command; returns null when it behaved as the suite expects, else why not.</summary>
    private string? Execute(string type, JsonElement command)
    {
        switch (type)
        {
            case "module":
            {
                var instance = _linker.Instantiate(_store, Load(command));
                _current = instance;
                if (command.TryGetProperty("name", out var name)) _named[name.GetString()!] = instance;
                return null;
            }
            case "register":
            {
                var instance = command.TryGetProperty("name", out var name) ? _named[name.GetString()!] : _current!;
                _linker.DefineInstance(command.GetProperty("as").GetString()!, instance);
                return null;
            }
            case "action":
                Perform(command.GetProperty("action"));
                return null;
            case "assert_return":
                return CheckReturn(Perform(command.GetProperty("action")), command.GetProperty("expected"));
            case "assert_trap":
            case "assert_exhaustion":
                return ExpectTrap(command, () => Perform(command.GetProperty("action")));
            case "assert_uninstantiable":
                return ExpectTrap(command, () => _linker.Instantiate(_store, Load(command)));
            case "assert_unlinkable":
                try
                {
                    _linker.Instantiate(_store, Load(command));
                    return "instantiated, but the module should not link";
                }
                catch (LinkException)
                {
                    return null;
                }
            case "assert_invalid":
                return ExpectRejection<InvalidModuleException>(command);
            case "assert_malformed":
                return ExpectRejection<MalformedModuleException>(command);
            default:
                return $"unknown command type '{type}'";
        }
    }

    private Module Load(JsonElement command) =>
        Module.Load(File.ReadAllBytes(Path.Combine(_directory, command.GetProperty("filename").GetString()!)));

    private string? ExpectRejection<T>(JsonElement command) where T : WasmException
    {
        try
        {
            Load(command);
            return $"accepted, but the module is {command.GetProperty("type").GetString()![7..]} ({command.GetProperty("text").GetString()})";
        }
        catch (T)
        {
            return null;
        }
        catch (WasmException e)
        {
            return $"rejected with {e.GetType().Name} ({e.Message}), expected {typeof(T).Name} ({command.GetProperty("text").GetString()})";
        }
    }

    private static string? ExpectTrap(JsonElement command, Action action)
    {
        var expected = command.GetProperty("text").GetString()!;
        try
        {
            action();
            return $"no trap, expected \"{expected}\"";
        }
        catch (TrapException trap)
        {
            return trap.SpecMessage.StartsWith(expected, StringComparison.Ordinal) || expected.StartsWith(trap.SpecMessage, StringComparison.Ordinal)
                ? null
                : $"trapped with \"{trap.SpecMessage}\", expected \"{expected}\"";
        }
    }

    private Value[] Perform(JsonElement action)
    {
        var instance = action.TryGetProperty("module", out var module) ? _named[module.GetString()!] : _current!;
        var field = action.GetProperty("field").GetString()!;
        switch (action.GetProperty("type").GetString())
        {
            case "invoke":
                var arguments = action.GetProperty("args").EnumerateArray().Select(ParseValue).ToArray();
                return _store.Invoke(instance.GetFunction(field), arguments);
            case "get":
                return [instance.GetGlobal(field).Value];
            default:
                throw new InvalidOperationException($"unknown action {action.GetProperty("type").GetString()}");
        }
    }

    private static Value ParseValue(JsonElement element)
    {
        var text = element.GetProperty("value").GetString()!;
        return element.GetProperty("type").GetString() switch
        {
            "i32" => Value.I32((int)uint.Parse(text)),
            "i64" => Value.I64((long)ulong.Parse(text)),
            "f32" => Value.F32Bits(uint.Parse(text)),
            "f64" => Value.F64Bits(ulong.Parse(text)),
            "externref" => text == "null" ? Value.Null(ValType.ExternRef) : Value.ExternRef(ulong.Parse(text)),
            "funcref" => text == "null" ? Value.Null(ValType.FuncRef) : throw new NotSupportedException("funcref argument"),
            var other => throw new NotSupportedException($"value type {other}"),
        };
    }

    private static string? CheckReturn(Value[] actual, JsonElement expected)
    {
        var expectations = expected.EnumerateArray().ToArray();
        if (actual.Length != expectations.Length) return $"returned {actual.Length} values, expected {expectations.Length}";
        for (var i = 0; i < actual.Length; i++)
        {
            if (!Matches(actual[i], expectations[i]))
                return $"result {i} is {actual[i]} (bits 0x{actual[i].Bits:x}), expected {expectations[i]}";
        }
        return null;
    }

    private static bool Matches(Value actual, JsonElement expected)
    {
        var type = expected.GetProperty("type").GetString();
        var text = expected.TryGetProperty("value", out var value) ? value.GetString() : null;
        switch (type)
        {
            case "i32":
                return actual.Type == ValType.I32 && (uint)actual.Bits == uint.Parse(text!);
            case "i64":
                return actual.Type == ValType.I64 && actual.Bits == ulong.Parse(text!);
            case "f32":
                if (actual.Type != ValType.F32) return false;
                return text switch
                {
                    "nan:canonical" => (actual.Bits & 0x7FFF_FFFF) == 0x7FC0_0000,
                    "nan:arithmetic" => (actual.Bits & 0x7FC0_0000) == 0x7FC0_0000,
                    _ => actual.Bits == uint.Parse(text!),
                };
            case "f64":
                if (actual.Type != ValType.F64) return false;
                return text switch
                {
                    "nan:canonical" => (actual.Bits & 0x7FFF_FFFF_FFFF_FFFF) == 0x7FF8_0000_0000_0000,
                    "nan:arithmetic" => (actual.Bits & 0x7FF8_0000_0000_0000) == 0x7FF8_0000_0000_0000,
                    _ => actual.Bits == ulong.Parse(text!),
                };
            case "externref":
                return actual.Type == ValType.ExternRef && (text == "null" ? actual.Bits == 0 : actual.Bits == ulong.Parse(text!) + 1);
            case "funcref":
                return actual.Type == ValType.FuncRef && (text == "null" ? actual.Bits == 0 : actual.Bits != 0);
            default:
                return false;
        }
    }
}
