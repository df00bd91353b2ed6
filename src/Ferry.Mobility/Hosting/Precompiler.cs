using System.Reflection;
using System.Runtime.CompilerServices;

namespace Ferry.Mobility.Hosting;

/// <summary>
/// Compiles every method of some assemblies, and of some closed generic types, ahead of its first call. Ferry runs with
/// tiered compilation off, so each method is compiled, optimized, when first called, and a path first taken inside a
/// migration's stop was compiled there: a node's first real migration spent 30-44 ms of its downtime so (translating and
/// restoring a program unlike the warm-up's, recording the commitment), the later ones 2-6 ms. Open generic types and
/// methods compile per instantiation: those a migration's stop uses are named by the host. Virtual methods are prepared
/// too: nearly all of a migration is async methods, whose bodies are their state machines' MoveNext, which PrepareMethod
/// compiles, as it does overrides; an interface implementation on a class it leaves to the first call (both checked with
/// the JIT's own log).
/// </summary>
public static class Precompiler
{
    private const BindingFlags Declared = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>
    /// Compiles the methods of <paramref name="assemblies"/>' non-generic types and of <paramref name="instantiations"/>
    /// (closed generic types, such as a dictionary keyed by Guid whose first insertion took 3.4 ms to compile); returns how many it prepared.
    /// </summary>
    public static int Run(IEnumerable<Assembly> assemblies, IEnumerable<Type> instantiations, CancellationToken cancel)
    {
        var compiled = 0;
        foreach (var assembly in assemblies)
        {
            foreach (var type in assembly.GetTypes())
            {
                if (!type.ContainsGenericParameters) compiled += Compile(type, null, cancel);
            }
        }
        foreach (var type in instantiations)
        {
            if (!type.IsConstructedGenericType || type.ContainsGenericParameters) throw new ArgumentException($"{type} is not a closed generic type", nameof(instantiations));
            compiled += Compile(type, type.GenericTypeArguments.Select(a => a.TypeHandle).ToArray(), cancel);
        }
        return compiled;
    }

    private static int Compile(Type type, RuntimeTypeHandle[]? instantiation, CancellationToken cancel)
    {
        var compiled = 0;
        foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            cancel.ThrowIfCancellationRequested();
            if (method.IsAbstract || method.ContainsGenericParameters || method.GetMethodBody() is null) continue;
            RuntimeHelpers.PrepareMethod(method.MethodHandle, instantiation);
            compiled++;
        }
        return compiled;
    }
}
