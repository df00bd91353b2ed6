using Ferry.Engine.Memory;
using Ferry.Wasm;

namespace Ferry.Engine;

/// <summary>An exported or importable entity: a function, table, memory or global.</summary>
public readonly struct Extern
{
    private Extern(ExternKind kind, object value)
    {
        Kind = kind;
        Object = value;
    }

    public ExternKind Kind { get; }
    public object Object { get; }

    public static Extern From(FunctionInstance function) => new(ExternKind.Func, function);
    public static Extern From(TableInstance table) => new(ExternKind.Table, table);
    public static Extern From(LinearMemory memory) => new(ExternKind.Memory, memory);
    public static Extern From(GlobalInstance global) => new(ExternKind.Global, global);

    public FunctionInstance? AsFunction => Object as FunctionInstance;
    public TableInstance? AsTable => Object as TableInstance;
    public LinearMemory? AsMemory => Object as LinearMemory;
    public GlobalInstance? AsGlobal => Object as GlobalInstance;
}
