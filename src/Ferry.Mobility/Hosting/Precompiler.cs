using System.Reflection;
using System.Runtime.CompilerServices;

namespace Ferry.Mobility.Hosting;

/// <summary>
/// Compiles every method of some assemblies ahead of its first call. Ferry runs with tiered compilation off, so each
/// method is compiled, optimized, when first called, and a path first taken inside a migration's stop was compiled there:
/// a node's first real migration spent 30-44 ms of its downtime so (translating and restoring a program unlike the
/// warm-up's, recording the commitment), the later ones 2-6 ms. Open generic types and methods compile per
/// instantiation and are left to their first use.
/// </summary>
public static class Precompiler
{
    private const BindingFlags Declared = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>Compiles the methods of <paramref name="assemblies"/>; returns how many.</summary>
    public static int Run(IEnumerable<Assembly> assemblies, CancellationToken cancel)
    {
        var compiled = 0;
        foreach (var assembly in assemblies)
        {
            foreach (var type in assembly.GetTypes())
            {
                if (type.ContainsGenericParameters) continue;
                foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
                {
                    cancel.ThrowIfCancellationRequested();
                    if (method.IsAbstract || method.ContainsGenericParameters || method.GetMethodBody() is null) continue;
                    RuntimeHelpers.PrepareMethod(method.MethodHandle);
                    compiled++;
                }
            }
        }
        return compiled;
    }
}
