using System.CommandLine;

namespace Ferry.Cli;

/// <summary>
/// Everything after the MODULE of `run` and `submit` belongs to the guest: `ferry run prog.wasm -h` passes -h to prog
/// instead of printing Ferry's help, and a guest's own --dir, --env or --fuel is not taken as Ferry's. System.CommandLine
/// matches options anywhere on the line, so a `--` goes in right after the module unless the user wrote one there.
/// </summary>
internal static class GuestArguments
{
    private static readonly string[] CommandsWithModule = ["run", "submit"];

    public static string[] Separate(RootCommand root, string[] args)
    {
        if (args.Length == 0 || Array.IndexOf(CommandsWithModule, args[0]) < 0) return args;
        if (root.Subcommands.FirstOrDefault(c => c.Name == args[0]) is not { } command) return args;
        for (var i = 1; i < args.Length; i++)
        {
            var token = args[i];
            if (token == "--") return args;
            if (token.Length > 1 && token[0] == '-')
            {
                var name = token.Split('=', 2)[0];
                var option = command.Options.Concat(root.Options.Where(o => o.Recursive)).FirstOrDefault(o => o.Name == name || o.Aliases.Contains(name));
                // An option that takes a value consumes the next token (unless written --name=value).
                if (option is not null && !token.Contains('=') && option.ValueType != typeof(bool) && option.Arity.MaximumNumberOfValues > 0) i++;
                continue;
            }
            // The module: a `--` the user wrote right after it keeps its old meaning, the end of Ferry's options.
            return i + 1 == args.Length || args[i + 1] == "--" ? args : [.. args[..(i + 1)], "--", .. args[(i + 1)..]];
        }
        return args;
    }
}
