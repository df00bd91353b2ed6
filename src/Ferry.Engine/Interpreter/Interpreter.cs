using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Ferry.Engine.Interpreter;
using Ferry.Engine.Memory;

namespace Ferry.Engine;

public sealed unsafe partial class Execution
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float F32(ulong bits) => BitConverter.UInt32BitsToSingle((uint)bits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double F64(ulong bits) => BitConverter.UInt64BitsToDouble(bits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Bits(float value) => BitConverter.SingleToUInt32Bits(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Bits(double value) => BitConverter.DoubleToUInt64Bits(value);

    /// <summary>
    /// The interpreter. Position, frame base, code and memory view live in locals; the loop leaves only
    /// through a status, after writing the position back.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ExecutionStatus RunLoop(ref long fuelRef)
    {
        var fuel = fuelRef;
        _stackBase = (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_stack));
        var ip = Enter(_function!, _step, _pc);
        var f = _stackBase + _fp;
        byte* mem = _memory is null ? null : _memory.Base;
        ulong loadLimit = _memory?.LoadLimit ?? 0, storeLimit = _memory?.StoreLimit ?? 0;
        ExecutionStatus status;
        ulong result;
        TrapKind trapKind;
        long access;
        CompiledFunction callee;
        HostFunction hostCallee;
        int argBase;

        while (true)
        {
            ref var ins = ref *ip;
            ip++;
            switch (ins.Op)
            {
                case Op.FuelFast:
                    // A head with no instructions has no stable position to pause at; the next head does.
                    if (ins.Imm != 0 && Volatile.Read(ref _pauseRequested) != 0)
                    {
                        ip--;
                        status = ExecutionStatus.Paused;
                        goto suspend;
                    }
                    if (fuel >= (long)ins.Imm)
                    {
                        fuel -= (long)ins.Imm;
                        continue;
                    }
                    ip = Enter(_function!, true, ins.B);
                    continue;
                case Op.FuelStep:
                    if (Volatile.Read(ref _pauseRequested) != 0)
                    {
                        ip--;
                        status = ExecutionStatus.Paused;
                        goto suspend;
                    }
                    if (ins.B >= 0 && fuel >= ins.C)
                    {
                        ip = Enter(_function!, false, ins.B);
                        continue;
                    }
                    if (fuel == 0)
                    {
                        ip--;
                        status = ExecutionStatus.OutOfFuel;
                        goto suspend;
                    }
                    fuel--;
                    continue;
                case Op.Unreachable:
                    trapKind = TrapKind.Unreachable;
                    goto trap;
                case Op.Br:
                    ip += ins.A;
                    continue;
                case Op.BrIf:
                    if ((uint)f[ins.B] != 0) ip += ins.A;
                    continue;
                case Op.BrIfNot:
                    if ((uint)f[ins.B] == 0) ip += ins.A;
                    continue;
                case Op.BrI32Eqz:
                    if ((uint)f[ins.B] == 0) ip += ins.A;
                    continue;
                case Op.BrI32Nez:
                    if ((uint)f[ins.B] != 0) ip += ins.A;
                    continue;
                case Op.BrTable:
                {
                    var index = (uint)f[ins.B];
                    var last = (uint)ins.C - 1;
                    ip += _branchTable[ins.A + (int)(index < last ? index : last)];
                    continue;
                }
                case Op.Return:
                    if (_depth == 0)
                    {
                        Results = MakeResults(_function!.Function.Type, new ReadOnlySpan<ulong>(f, _function.ResultCount));
                        _function = null;
                        fuelRef = fuel;
                        return ExecutionStatus.Finished;
                    }
                    {
                        ref var frame = ref _frames[--_depth];
                        f = _stackBase + frame.Fp;
                        var caller = FunctionOf(frame);
                        if (caller.Instance == _instance)
                        {
                            var code = frame.Step ? caller.Step : caller.Fast;
                            _function = caller;
                            _step = frame.Step;
                            _codeBase = code.Start;
                            _branchTable = code.BranchStart;
                            ip = _codeBase + frame.Pc;
                        }
                        else
                        {
                            if (caller.Instance == CompiledFunction.Untranslated)
                            {
                                // Restored untranslated, and translated now that it is returned to.
                                if (TranslateReturnedTo(caller) is not { } translated)
                                {
                                    trapKind = TrapKind.CallStackExhausted;
                                    goto trap;
                                }
                                caller = translated;
                                f = _stackBase + frame.Fp;
                            }
                            ip = Enter(caller, frame.Step, frame.Pc);
                        }
                        // The callee may have grown the memory.
                        var memory = _memory;
                        if (memory is not null)
                        {
                            mem = memory.Base;
                            loadLimit = memory.LoadLimit;
                            storeLimit = memory.StoreLimit;
                        }
                    }
                    continue;
                case Op.CallWasm:
                    callee = _function!.Callees[ins.A].Compiled;
                    argBase = ins.B;
                    goto callWasm;
                case Op.CallHost:
                    hostCallee = _function!.HostCallees[ins.A];
                    argBase = ins.B;
                    goto callHost;
                case Op.CallIndirect:
                {
                    var table = _instance!.Tables[ins.C].Elements;
                    var index = (uint)f[(int)ins.Imm];
                    if (index >= (uint)table.Length)
                    {
                        trapKind = TrapKind.UndefinedElement;
                        goto trap;
                    }
                    var reference = table[index];
                    if (reference == 0)
                    {
                        trapKind = TrapKind.UninitializedElement;
                        goto trap;
                    }
                    var target = _store.FunctionAt((int)(reference - 1));
                    if (target.TypeId != ins.A)
                    {
                        trapKind = TrapKind.IndirectCallTypeMismatch;
                        goto trap;
                    }
                    argBase = ins.B;
                    if (target is WasmFunction wasmTarget)
                    {
                        callee = wasmTarget.Compiled;
                        goto callWasm;
                    }
                    hostCallee = (HostFunction)target;
                    goto callHost;
                }
                case Op.Copy:
                    f[ins.A] = f[ins.B];
                    continue;
                case Op.Const:
                    f[ins.A] = ins.Imm;
                    continue;
                case Op.Select:
                    f[ins.A] = (uint)f[(int)ins.Imm] != 0 ? f[ins.B] : f[ins.C];
                    continue;
                case Op.GlobalGet:
                    f[ins.A] = _globals[ins.B].Bits;
                    continue;
                case Op.GlobalSet:
                    _globals[ins.A].Bits = f[ins.B];
                    continue;
                case Op.TableGet:
                {
                    var table = _instance!.Tables[ins.B].Elements;
                    var index = (uint)f[ins.C];
                    if (index >= (uint)table.Length)
                    {
                        trapKind = TrapKind.OutOfBoundsTableAccess;
                        goto trap;
                    }
                    f[ins.A] = table[index];
                    continue;
                }
                case Op.TableSet:
                {
                    var instance = _instance!.Tables[ins.A];
                    var table = instance.Elements;
                    var index = (uint)f[ins.B];
                    if (index >= (uint)table.Length)
                    {
                        trapKind = TrapKind.OutOfBoundsTableAccess;
                        goto trap;
                    }
                    table[index] = f[ins.C];
                    instance.Written = true;
                    continue;
                }

                case Op.I32Load:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 4 > loadLimit && (access = _memory!.CheckAccess(ea, 4, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<uint>(mem + ea);
                    continue;
                }
                case Op.I64Load:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 8 > loadLimit && (access = _memory!.CheckAccess(ea, 8, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<ulong>(mem + ea);
                    continue;
                }
                case Op.F32Load:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 4 > loadLimit && (access = _memory!.CheckAccess(ea, 4, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<uint>(mem + ea);
                    continue;
                }
                case Op.F64Load:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 8 > loadLimit && (access = _memory!.CheckAccess(ea, 8, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<ulong>(mem + ea);
                    continue;
                }
                case Op.I32Load8S:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 1 > loadLimit && (access = _memory!.CheckAccess(ea, 1, false)) != -1) goto memoryFault;
                    f[ins.A] = (uint)(int)*(sbyte*)(mem + ea);
                    continue;
                }
                case Op.I32Load8U:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 1 > loadLimit && (access = _memory!.CheckAccess(ea, 1, false)) != -1) goto memoryFault;
                    f[ins.A] = *(mem + ea);
                    continue;
                }
                case Op.I32Load16S:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 2 > loadLimit && (access = _memory!.CheckAccess(ea, 2, false)) != -1) goto memoryFault;
                    f[ins.A] = (uint)(int)Unsafe.ReadUnaligned<short>(mem + ea);
                    continue;
                }
                case Op.I32Load16U:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 2 > loadLimit && (access = _memory!.CheckAccess(ea, 2, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<ushort>(mem + ea);
                    continue;
                }
                case Op.I64Load8S:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 1 > loadLimit && (access = _memory!.CheckAccess(ea, 1, false)) != -1) goto memoryFault;
                    f[ins.A] = (ulong)(long)*(sbyte*)(mem + ea);
                    continue;
                }
                case Op.I64Load8U:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 1 > loadLimit && (access = _memory!.CheckAccess(ea, 1, false)) != -1) goto memoryFault;
                    f[ins.A] = *(mem + ea);
                    continue;
                }
                case Op.I64Load16S:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 2 > loadLimit && (access = _memory!.CheckAccess(ea, 2, false)) != -1) goto memoryFault;
                    f[ins.A] = (ulong)(long)Unsafe.ReadUnaligned<short>(mem + ea);
                    continue;
                }
                case Op.I64Load16U:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 2 > loadLimit && (access = _memory!.CheckAccess(ea, 2, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<ushort>(mem + ea);
                    continue;
                }
                case Op.I64Load32S:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 4 > loadLimit && (access = _memory!.CheckAccess(ea, 4, false)) != -1) goto memoryFault;
                    f[ins.A] = (ulong)(long)Unsafe.ReadUnaligned<int>(mem + ea);
                    continue;
                }
                case Op.I64Load32U:
                {
                    var ea = (uint)f[ins.B] + ins.Imm;
                    if (ea + 4 > loadLimit && (access = _memory!.CheckAccess(ea, 4, false)) != -1) goto memoryFault;
                    f[ins.A] = Unsafe.ReadUnaligned<uint>(mem + ea);
                    continue;
                }
                case Op.I32Store:
                case Op.F32Store:
                case Op.I64Store32:
                {
                    var ea = (uint)f[ins.A] + ins.Imm;
                    if (ea + 4 > storeLimit && (access = _memory!.CheckAccess(ea, 4, true)) != -1) goto memoryFault;
                    Unsafe.WriteUnaligned(mem + ea, (uint)f[ins.B]);
                    continue;
                }
                case Op.I64Store:
                case Op.F64Store:
                {
                    var ea = (uint)f[ins.A] + ins.Imm;
                    if (ea + 8 > storeLimit && (access = _memory!.CheckAccess(ea, 8, true)) != -1) goto memoryFault;
                    Unsafe.WriteUnaligned(mem + ea, f[ins.B]);
                    continue;
                }
                case Op.I32Store8:
                case Op.I64Store8:
                {
                    var ea = (uint)f[ins.A] + ins.Imm;
                    if (ea + 1 > storeLimit && (access = _memory!.CheckAccess(ea, 1, true)) != -1) goto memoryFault;
                    *(mem + ea) = (byte)f[ins.B];
                    continue;
                }
                case Op.I32Store16:
                case Op.I64Store16:
                {
                    var ea = (uint)f[ins.A] + ins.Imm;
                    if (ea + 2 > storeLimit && (access = _memory!.CheckAccess(ea, 2, true)) != -1) goto memoryFault;
                    Unsafe.WriteUnaligned(mem + ea, (ushort)f[ins.B]);
                    continue;
                }
                case Op.MemorySize:
                    f[ins.A] = _memory!.Pages;
                    continue;
                case Op.MemoryGrow:
                    f[ins.A] = (uint)_memory!.Grow((uint)f[ins.B]);
                    mem = _memory.Base;
                    loadLimit = _memory.LoadLimit;
                    storeLimit = _memory.StoreLimit;
                    continue;
                case Op.MemoryFill:
                {
                    var operands = f + ins.B;
                    ulong destination = (uint)operands[0], length = (uint)operands[2];
                    if ((access = _memory!.CheckAccess(destination, length, true)) != -1) goto memoryFault;
                    NativeMemory.Fill(mem + destination, (nuint)length, (byte)operands[1]);
                    continue;
                }
                case Op.MemoryCopy:
                {
                    var operands = f + ins.B;
                    ulong destination = (uint)operands[0], source = (uint)operands[1], length = (uint)operands[2];
                    if ((access = _memory!.CheckAccess(source, length, false)) != -1) goto memoryFault;
                    if ((access = _memory.CheckAccess(destination, length, true)) != -1) goto memoryFault;
                    NativeMemory.Copy(mem + source, mem + destination, (nuint)length);
                    continue;
                }
                case Op.MemoryInit:
                {
                    var operands = f + ins.B;
                    ulong destination = (uint)operands[0], source = (uint)operands[1], length = (uint)operands[2];
                    var segment = _instance!.DataSegments[ins.A];
                    if (source + length > (ulong)segment.Length)
                    {
                        trapKind = TrapKind.OutOfBoundsMemoryAccess;
                        goto trap;
                    }
                    if ((access = _memory!.CheckAccess(destination, length, true)) != -1) goto memoryFault;
                    segment.Span.Slice((int)source, (int)length).CopyTo(new Span<byte>(mem + destination, (int)length));
                    continue;
                }
                case Op.DataDrop:
                    _instance!.DataSegments[ins.A] = ReadOnlyMemory<byte>.Empty;
                    continue;
                case Op.TableInit:
                {
                    var operands = f + ins.B;
                    ulong destination = (uint)operands[0], source = (uint)operands[1], length = (uint)operands[2];
                    var segment = _instance!.ElementSegments[ins.A];
                    var table = _instance!.Tables[ins.C];
                    if (source + length > (ulong)segment.Length || destination + length > table.Size)
                    {
                        trapKind = TrapKind.OutOfBoundsTableAccess;
                        goto trap;
                    }
                    Array.Copy(segment, (long)source, table.Elements, (long)destination, (long)length);
                    table.Written = true;
                    continue;
                }
                case Op.ElemDrop:
                    _instance!.ElementSegments[ins.A] = [];
                    continue;
                case Op.TableCopy:
                {
                    var operands = f + ins.B;
                    ulong destination = (uint)operands[0], source = (uint)operands[1], length = (uint)operands[2];
                    var target = _instance!.Tables[ins.A];
                    var origin = _instance!.Tables[ins.C];
                    if (source + length > origin.Size || destination + length > target.Size)
                    {
                        trapKind = TrapKind.OutOfBoundsTableAccess;
                        goto trap;
                    }
                    Array.Copy(origin.Elements, (long)source, target.Elements, (long)destination, (long)length);
                    target.Written = true;
                    continue;
                }
                case Op.TableGrow:
                {
                    var operands = f + ins.B;
                    f[ins.A] = (uint)_instance!.Tables[ins.C].Grow((uint)operands[1], operands[0]);
                    continue;
                }
                case Op.TableSize:
                    f[ins.A] = _instance!.Tables[ins.B].Size;
                    continue;
                case Op.TableFill:
                {
                    var operands = f + ins.B;
                    ulong start = (uint)operands[0], length = (uint)operands[2];
                    var table = _instance!.Tables[ins.A];
                    if (start + length > table.Size)
                    {
                        trapKind = TrapKind.OutOfBoundsTableAccess;
                        goto trap;
                    }
                    Array.Fill(table.Elements, operands[1], (int)start, (int)length);
                    table.Written = true;
                    continue;
                }

                case Op.I32Eqz:
                    f[ins.A] = (uint)f[ins.B] == 0 ? 1UL : 0UL;
                    continue;
                case Op.I64Eqz:
                    f[ins.A] = f[ins.B] == 0 ? 1UL : 0UL;
                    continue;
                case Op.I32Clz:
                    f[ins.A] = (ulong)BitOperations.LeadingZeroCount((uint)f[ins.B]);
                    continue;
                case Op.I32Ctz:
                    f[ins.A] = (ulong)BitOperations.TrailingZeroCount((uint)f[ins.B]);
                    continue;
                case Op.I32Popcnt:
                    f[ins.A] = (ulong)BitOperations.PopCount((uint)f[ins.B]);
                    continue;
                case Op.I64Clz:
                    f[ins.A] = (ulong)BitOperations.LeadingZeroCount(f[ins.B]);
                    continue;
                case Op.I64Ctz:
                    f[ins.A] = (ulong)BitOperations.TrailingZeroCount(f[ins.B]);
                    continue;
                case Op.I64Popcnt:
                    f[ins.A] = (ulong)BitOperations.PopCount(f[ins.B]);
                    continue;
                case Op.I32DivS:
                {
                    int a = (int)f[ins.B], b = (int)f[ins.C];
                    if (b == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    if (b == -1 && a == int.MinValue) { trapKind = TrapKind.IntegerOverflow; goto trap; }
                    f[ins.A] = (uint)(a / b);
                    continue;
                }
                case Op.I32DivU:
                {
                    uint a = (uint)f[ins.B], b = (uint)f[ins.C];
                    if (b == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    f[ins.A] = a / b;
                    continue;
                }
                case Op.I32RemS:
                {
                    int a = (int)f[ins.B], b = (int)f[ins.C];
                    if (b == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    f[ins.A] = b == -1 ? 0UL : (uint)(a % b);
                    continue;
                }
                case Op.I32RemU:
                {
                    uint a = (uint)f[ins.B], b = (uint)f[ins.C];
                    if (b == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    f[ins.A] = a % b;
                    continue;
                }
                case Op.I64DivS:
                {
                    long a = (long)f[ins.B], b = (long)f[ins.C];
                    if (b == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    if (b == -1 && a == long.MinValue) { trapKind = TrapKind.IntegerOverflow; goto trap; }
                    f[ins.A] = (ulong)(a / b);
                    continue;
                }
                case Op.I64DivU:
                    if ((f[ins.C]) == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    f[ins.A] = (f[ins.B]) / (f[ins.C]);
                    continue;
                case Op.I64RemS:
                {
                    long a = (long)f[ins.B], b = (long)f[ins.C];
                    if (b == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    f[ins.A] = b == -1 ? 0UL : (ulong)(a % b);
                    continue;
                }
                case Op.I64RemU:
                    if ((f[ins.C]) == 0) { trapKind = TrapKind.IntegerDivideByZero; goto trap; }
                    f[ins.A] = (f[ins.B]) % (f[ins.C]);
                    continue;

                case Op.F32Abs:
                    f[ins.A] = f[ins.B] & 0x7FFF_FFFFUL;
                    continue;
                case Op.F32Neg:
                    f[ins.A] = (f[ins.B] ^ 0x8000_0000UL) & 0xFFFF_FFFFUL;
                    continue;
                case Op.F32Copysign:
                    f[ins.A] = (f[ins.B] & 0x7FFF_FFFFUL) | (f[ins.C] & 0x8000_0000UL);
                    continue;
                case Op.F64Abs:
                    f[ins.A] = f[ins.B] & 0x7FFF_FFFF_FFFF_FFFFUL;
                    continue;
                case Op.F64Neg:
                    f[ins.A] = f[ins.B] ^ 0x8000_0000_0000_0000UL;
                    continue;
                case Op.F64Copysign:
                    f[ins.A] = (f[ins.B] & 0x7FFF_FFFF_FFFF_FFFFUL) | (f[ins.C] & 0x8000_0000_0000_0000UL);
                    continue;
                case Op.F32Ceil:
                    f[ins.A] = Bits(MathF.Ceiling(F32(f[ins.B])));
                    continue;
                case Op.F32Floor:
                    f[ins.A] = Bits(MathF.Floor(F32(f[ins.B])));
                    continue;
                case Op.F32Trunc:
                    f[ins.A] = Bits(MathF.Truncate(F32(f[ins.B])));
                    continue;
                case Op.F32Nearest:
                    f[ins.A] = Bits(MathF.Round(F32(f[ins.B]), MidpointRounding.ToEven));
                    continue;
                case Op.F32Sqrt:
                    f[ins.A] = Bits(MathF.Sqrt(F32(f[ins.B])));
                    continue;
                case Op.F64Ceil:
                    f[ins.A] = Bits(Math.Ceiling(F64(f[ins.B])));
                    continue;
                case Op.F64Floor:
                    f[ins.A] = Bits(Math.Floor(F64(f[ins.B])));
                    continue;
                case Op.F64Trunc:
                    f[ins.A] = Bits(Math.Truncate(F64(f[ins.B])));
                    continue;
                case Op.F64Nearest:
                    f[ins.A] = Bits(Math.Round(F64(f[ins.B]), MidpointRounding.ToEven));
                    continue;
                case Op.F64Sqrt:
                    f[ins.A] = Bits(Math.Sqrt(F64(f[ins.B])));
                    continue;
                case Op.F32Add:
                    f[ins.A] = Bits(F32(f[ins.B]) + F32(f[ins.C]));
                    continue;
                case Op.F32Sub:
                    f[ins.A] = Bits(F32(f[ins.B]) - F32(f[ins.C]));
                    continue;
                case Op.F32Mul:
                    f[ins.A] = Bits(F32(f[ins.B]) * F32(f[ins.C]));
                    continue;
                case Op.F32Div:
                    f[ins.A] = Bits(F32(f[ins.B]) / F32(f[ins.C]));
                    continue;
                case Op.F32Min:
                    f[ins.A] = FloatOps.Min32(f[ins.B], f[ins.C]);
                    continue;
                case Op.F32Max:
                    f[ins.A] = FloatOps.Max32(f[ins.B], f[ins.C]);
                    continue;
                case Op.F64Add:
                    f[ins.A] = Bits(F64(f[ins.B]) + F64(f[ins.C]));
                    continue;
                case Op.F64Sub:
                    f[ins.A] = Bits(F64(f[ins.B]) - F64(f[ins.C]));
                    continue;
                case Op.F64Mul:
                    f[ins.A] = Bits(F64(f[ins.B]) * F64(f[ins.C]));
                    continue;
                case Op.F64Div:
                    f[ins.A] = Bits(F64(f[ins.B]) / F64(f[ins.C]));
                    continue;
                case Op.F64Min:
                    f[ins.A] = FloatOps.Min64(f[ins.B], f[ins.C]);
                    continue;
                case Op.F64Max:
                    f[ins.A] = FloatOps.Max64(f[ins.B], f[ins.C]);
                    continue;

                case Op.I32WrapI64:
                    f[ins.A] = (uint)f[ins.B];
                    continue;
                case Op.I64ExtendI32S:
                    f[ins.A] = (ulong)(long)(int)f[ins.B];
                    continue;
                case Op.I64ExtendI32U:
                    f[ins.A] = (uint)f[ins.B];
                    continue;
                case Op.I32Extend8S:
                    f[ins.A] = (uint)(int)(sbyte)f[ins.B];
                    continue;
                case Op.I32Extend16S:
                    f[ins.A] = (uint)(int)(short)f[ins.B];
                    continue;
                case Op.I64Extend8S:
                    f[ins.A] = (ulong)(long)(sbyte)f[ins.B];
                    continue;
                case Op.I64Extend16S:
                    f[ins.A] = (ulong)(long)(short)f[ins.B];
                    continue;
                case Op.I64Extend32S:
                    f[ins.A] = (ulong)(long)(int)f[ins.B];
                    continue;
                case Op.F32ConvertI32S:
                    f[ins.A] = Bits((float)(int)f[ins.B]);
                    continue;
                case Op.F32ConvertI32U:
                    f[ins.A] = Bits((float)(long)(uint)f[ins.B]);
                    continue;
                case Op.F32ConvertI64S:
                    f[ins.A] = Bits((float)(long)f[ins.B]);
                    continue;
                case Op.F32ConvertI64U:
                    f[ins.A] = Bits(FloatOps.U64ToF32(f[ins.B]));
                    continue;
                case Op.F32DemoteF64:
                    f[ins.A] = Bits((float)F64(f[ins.B]));
                    continue;
                case Op.F64ConvertI32S:
                    f[ins.A] = Bits((double)(int)f[ins.B]);
                    continue;
                case Op.F64ConvertI32U:
                    f[ins.A] = Bits((double)(uint)f[ins.B]);
                    continue;
                case Op.F64ConvertI64S:
                    f[ins.A] = Bits((double)(long)f[ins.B]);
                    continue;
                case Op.F64ConvertI64U:
                    f[ins.A] = Bits(FloatOps.U64ToF64(f[ins.B]));
                    continue;
                case Op.F64PromoteF32:
                    f[ins.A] = Bits((double)F32(f[ins.B]));
                    continue;
                case Op.I32TruncF32S:
                case Op.I32TruncF32U:
                case Op.I32TruncF64S:
                case Op.I32TruncF64U:
                case Op.I64TruncF32S:
                case Op.I64TruncF32U:
                case Op.I64TruncF64S:
                case Op.I64TruncF64U:
                {
                    if (!FloatOps.TryTruncate(ins.Op, f[ins.B], out result, out trapKind)) goto trap;
                    f[ins.A] = result;
                    continue;
                }
                case Op.I32TruncSatF32S:
                case Op.I32TruncSatF32U:
                case Op.I32TruncSatF64S:
                case Op.I32TruncSatF64U:
                case Op.I64TruncSatF32S:
                case Op.I64TruncSatF32U:
                case Op.I64TruncSatF64S:
                case Op.I64TruncSatF64U:
                    f[ins.A] = FloatOps.TruncateSaturating(ins.Op, f[ins.B]);
                    continue;

                case Op.I32Add:
                    f[ins.A] = (uint)((uint)(f[ins.B]) + (uint)(f[ins.C]));
                    continue;
                case Op.I32AddImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) + (uint)(ins.Imm));
                    continue;
                case Op.I32Sub:
                    f[ins.A] = (uint)((uint)(f[ins.B]) - (uint)(f[ins.C]));
                    continue;
                case Op.I32SubImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) - (uint)(ins.Imm));
                    continue;
                case Op.I32Mul:
                    f[ins.A] = (uint)((uint)(f[ins.B]) * (uint)(f[ins.C]));
                    continue;
                case Op.I32MulImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) * (uint)(ins.Imm));
                    continue;
                case Op.I32And:
                    f[ins.A] = (uint)((uint)(f[ins.B]) & (uint)(f[ins.C]));
                    continue;
                case Op.I32AndImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) & (uint)(ins.Imm));
                    continue;
                case Op.I32Or:
                    f[ins.A] = (uint)((uint)(f[ins.B]) | (uint)(f[ins.C]));
                    continue;
                case Op.I32OrImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) | (uint)(ins.Imm));
                    continue;
                case Op.I32Xor:
                    f[ins.A] = (uint)((uint)(f[ins.B]) ^ (uint)(f[ins.C]));
                    continue;
                case Op.I32XorImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) ^ (uint)(ins.Imm));
                    continue;
                case Op.I32Shl:
                    f[ins.A] = (uint)((uint)(f[ins.B]) << (int)(f[ins.C]));
                    continue;
                case Op.I32ShlImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) << (int)(ins.Imm));
                    continue;
                case Op.I32ShrS:
                    f[ins.A] = (uint)((uint)((int)(f[ins.B]) >> (int)(f[ins.C])));
                    continue;
                case Op.I32ShrSImm:
                    f[ins.A] = (uint)((uint)((int)(f[ins.B]) >> (int)(ins.Imm)));
                    continue;
                case Op.I32ShrU:
                    f[ins.A] = (uint)((uint)(f[ins.B]) >> (int)(f[ins.C]));
                    continue;
                case Op.I32ShrUImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) >> (int)(ins.Imm));
                    continue;
                case Op.I32Rotl:
                    f[ins.A] = (uint)(BitOperations.RotateLeft((uint)(f[ins.B]), (int)(f[ins.C])));
                    continue;
                case Op.I32Rotr:
                    f[ins.A] = (uint)(BitOperations.RotateRight((uint)(f[ins.B]), (int)(f[ins.C])));
                    continue;
                case Op.I32Eq:
                    f[ins.A] = (uint)((uint)(f[ins.B]) == (uint)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32EqImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) == (uint)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32Ne:
                    f[ins.A] = (uint)((uint)(f[ins.B]) != (uint)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32NeImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) != (uint)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32LtS:
                    f[ins.A] = (uint)((int)(f[ins.B]) < (int)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32LtSImm:
                    f[ins.A] = (uint)((int)(f[ins.B]) < (int)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32LtU:
                    f[ins.A] = (uint)((uint)(f[ins.B]) < (uint)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32LtUImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) < (uint)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32GtS:
                    f[ins.A] = (uint)((int)(f[ins.B]) > (int)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32GtSImm:
                    f[ins.A] = (uint)((int)(f[ins.B]) > (int)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32GtU:
                    f[ins.A] = (uint)((uint)(f[ins.B]) > (uint)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32GtUImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) > (uint)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32LeS:
                    f[ins.A] = (uint)((int)(f[ins.B]) <= (int)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32LeSImm:
                    f[ins.A] = (uint)((int)(f[ins.B]) <= (int)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32LeU:
                    f[ins.A] = (uint)((uint)(f[ins.B]) <= (uint)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32LeUImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) <= (uint)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32GeS:
                    f[ins.A] = (uint)((int)(f[ins.B]) >= (int)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32GeSImm:
                    f[ins.A] = (uint)((int)(f[ins.B]) >= (int)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I32GeU:
                    f[ins.A] = (uint)((uint)(f[ins.B]) >= (uint)(f[ins.C]) ? 1u : 0u);
                    continue;
                case Op.I32GeUImm:
                    f[ins.A] = (uint)((uint)(f[ins.B]) >= (uint)(ins.Imm) ? 1u : 0u);
                    continue;
                case Op.I64Add:
                    f[ins.A] = (f[ins.B]) + (f[ins.C]);
                    continue;
                case Op.I64AddImm:
                    f[ins.A] = (f[ins.B]) + (ins.Imm);
                    continue;
                case Op.I64Sub:
                    f[ins.A] = (f[ins.B]) - (f[ins.C]);
                    continue;
                case Op.I64SubImm:
                    f[ins.A] = (f[ins.B]) - (ins.Imm);
                    continue;
                case Op.I64Mul:
                    f[ins.A] = (f[ins.B]) * (f[ins.C]);
                    continue;
                case Op.I64MulImm:
                    f[ins.A] = (f[ins.B]) * (ins.Imm);
                    continue;
                case Op.I64And:
                    f[ins.A] = (f[ins.B]) & (f[ins.C]);
                    continue;
                case Op.I64AndImm:
                    f[ins.A] = (f[ins.B]) & (ins.Imm);
                    continue;
                case Op.I64Or:
                    f[ins.A] = (f[ins.B]) | (f[ins.C]);
                    continue;
                case Op.I64OrImm:
                    f[ins.A] = (f[ins.B]) | (ins.Imm);
                    continue;
                case Op.I64Xor:
                    f[ins.A] = (f[ins.B]) ^ (f[ins.C]);
                    continue;
                case Op.I64XorImm:
                    f[ins.A] = (f[ins.B]) ^ (ins.Imm);
                    continue;
                case Op.I64Shl:
                    f[ins.A] = (f[ins.B]) << (int)(f[ins.C]);
                    continue;
                case Op.I64ShlImm:
                    f[ins.A] = (f[ins.B]) << (int)(ins.Imm);
                    continue;
                case Op.I64ShrS:
                    f[ins.A] = (ulong)((long)(f[ins.B]) >> (int)(f[ins.C]));
                    continue;
                case Op.I64ShrSImm:
                    f[ins.A] = (ulong)((long)(f[ins.B]) >> (int)(ins.Imm));
                    continue;
                case Op.I64ShrU:
                    f[ins.A] = (f[ins.B]) >> (int)(f[ins.C]);
                    continue;
                case Op.I64ShrUImm:
                    f[ins.A] = (f[ins.B]) >> (int)(ins.Imm);
                    continue;
                case Op.I64Rotl:
                    f[ins.A] = BitOperations.RotateLeft((f[ins.B]), (int)(f[ins.C]));
                    continue;
                case Op.I64Rotr:
                    f[ins.A] = BitOperations.RotateRight((f[ins.B]), (int)(f[ins.C]));
                    continue;
                case Op.I64Eq:
                    f[ins.A] = (f[ins.B]) == (f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64EqImm:
                    f[ins.A] = (f[ins.B]) == (ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64Ne:
                    f[ins.A] = (f[ins.B]) != (f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64NeImm:
                    f[ins.A] = (f[ins.B]) != (ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64LtS:
                    f[ins.A] = (long)(f[ins.B]) < (long)(f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64LtSImm:
                    f[ins.A] = (long)(f[ins.B]) < (long)(ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64LtU:
                    f[ins.A] = (f[ins.B]) < (f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64LtUImm:
                    f[ins.A] = (f[ins.B]) < (ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64GtS:
                    f[ins.A] = (long)(f[ins.B]) > (long)(f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64GtSImm:
                    f[ins.A] = (long)(f[ins.B]) > (long)(ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64GtU:
                    f[ins.A] = (f[ins.B]) > (f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64GtUImm:
                    f[ins.A] = (f[ins.B]) > (ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64LeS:
                    f[ins.A] = (long)(f[ins.B]) <= (long)(f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64LeSImm:
                    f[ins.A] = (long)(f[ins.B]) <= (long)(ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64LeU:
                    f[ins.A] = (f[ins.B]) <= (f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64LeUImm:
                    f[ins.A] = (f[ins.B]) <= (ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64GeS:
                    f[ins.A] = (long)(f[ins.B]) >= (long)(f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64GeSImm:
                    f[ins.A] = (long)(f[ins.B]) >= (long)(ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.I64GeU:
                    f[ins.A] = (f[ins.B]) >= (f[ins.C]) ? 1UL : 0UL;
                    continue;
                case Op.I64GeUImm:
                    f[ins.A] = (f[ins.B]) >= (ins.Imm) ? 1UL : 0UL;
                    continue;
                case Op.F32Eq:
                {
                    f[ins.A] = F32(f[ins.B]) == F32(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F64Eq:
                {
                    f[ins.A] = F64(f[ins.B]) == F64(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F32Ne:
                {
                    f[ins.A] = F32(f[ins.B]) != F32(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F64Ne:
                {
                    f[ins.A] = F64(f[ins.B]) != F64(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F32Lt:
                {
                    f[ins.A] = F32(f[ins.B]) < F32(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F64Lt:
                {
                    f[ins.A] = F64(f[ins.B]) < F64(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F32Gt:
                {
                    f[ins.A] = F32(f[ins.B]) > F32(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F64Gt:
                {
                    f[ins.A] = F64(f[ins.B]) > F64(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F32Le:
                {
                    f[ins.A] = F32(f[ins.B]) <= F32(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F64Le:
                {
                    f[ins.A] = F64(f[ins.B]) <= F64(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F32Ge:
                {
                    f[ins.A] = F32(f[ins.B]) >= F32(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.F64Ge:
                {
                    f[ins.A] = F64(f[ins.B]) >= F64(f[ins.C]) ? 1UL : 0UL;
                    continue;
                }
                case Op.BrI32Eq:
                    if ((uint)(f[ins.B]) == (uint)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32EqImm:
                    if ((uint)(f[ins.B]) == (uint)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32Ne:
                    if ((uint)(f[ins.B]) != (uint)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32NeImm:
                    if ((uint)(f[ins.B]) != (uint)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32LtS:
                    if ((int)(f[ins.B]) < (int)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32LtSImm:
                    if ((int)(f[ins.B]) < (int)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32LtU:
                    if ((uint)(f[ins.B]) < (uint)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32LtUImm:
                    if ((uint)(f[ins.B]) < (uint)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32GtS:
                    if ((int)(f[ins.B]) > (int)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32GtSImm:
                    if ((int)(f[ins.B]) > (int)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32GtU:
                    if ((uint)(f[ins.B]) > (uint)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32GtUImm:
                    if ((uint)(f[ins.B]) > (uint)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32LeS:
                    if ((int)(f[ins.B]) <= (int)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32LeSImm:
                    if ((int)(f[ins.B]) <= (int)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32LeU:
                    if ((uint)(f[ins.B]) <= (uint)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32LeUImm:
                    if ((uint)(f[ins.B]) <= (uint)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32GeS:
                    if ((int)(f[ins.B]) >= (int)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32GeSImm:
                    if ((int)(f[ins.B]) >= (int)(ins.Imm)) ip += ins.A;
                    continue;
                case Op.BrI32GeU:
                    if ((uint)(f[ins.B]) >= (uint)(f[ins.C])) ip += ins.A;
                    continue;
                case Op.BrI32GeUImm:
                    if ((uint)(f[ins.B]) >= (uint)(ins.Imm)) ip += ins.A;
                    continue;

                default:
                    throw new InvalidOperationException($"corrupt internal code: {ins.Op} at pc {ip - _codeBase - 1}");
            }

        callWasm:
            {
                var newFp = (f - _stackBase) + argBase;
                if (_depth >= _maxDepth)
                {
                    trapKind = TrapKind.CallStackExhausted;
                    goto trap;
                }
                if (newFp + callee.FrameSize > _stack.Length)
                {
                    var fpOffset = f - _stackBase;
                    if (!GrowStack(newFp + callee.FrameSize))
                    {
                        trapKind = TrapKind.CallStackExhausted;
                        goto trap;
                    }
                    _stackBase = (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_stack));
                    f = _stackBase + fpOffset;
                }
                PushFrame(_function!, (int)(ip - _codeBase), (int)(f - _stackBase), _step);
                f = _stackBase + newFp;
                for (var i = callee.ParamCount; i < callee.LocalCount; i++) f[i] = 0;
                if (callee.Instance == _instance)
                {
                    _function = callee;
                    _step = false;
                    _codeBase = ip = callee.Fast.Start;
                    _branchTable = callee.Fast.BranchStart;
                    continue;
                }
                ip = Enter(callee, false, 0);
                mem = _memory is null ? null : _memory.Base;
                loadLimit = _memory?.LoadLimit ?? 0;
                storeLimit = _memory?.StoreLimit ?? 0;
                continue;
            }

        callHost:
            {
                SavePosition((int)(ip - _codeBase), (int)(f - _stackBase));
                status = CallHost(hostCallee, _instance!, f + argBase);
                if (status == ExecutionStatus.HostSuspended)
                {
                    // Stop before the call, so that resuming makes it again.
                    SavePosition((int)(ip - _codeBase) - 1, (int)(f - _stackBase));
                    fuelRef = fuel;
                    return status;
                }
                if (status != ExecutionStatus.Ready)
                {
                    fuelRef = fuel;
                    return status;
                }
                mem = _memory is null ? null : _memory.Base;
                loadLimit = _memory?.LoadLimit ?? 0;
                storeLimit = _memory?.StoreLimit ?? 0;
                continue;
            }
        }

    memoryFault:
        if (access == -2)
        {
            trapKind = TrapKind.OutOfBoundsMemoryAccess;
            goto trap;
        }
        // The faulting instruction has had no effect; it runs again once the frame is present.
        AbsentFrame = access;
        ip--;
        status = ExecutionStatus.FrameAbsent;
        goto suspend;

    trap:
        Trap = MakeTrap(trapKind, _function!, (int)(ip - _codeBase) - 1, _step);
        _function = null;
        fuelRef = fuel;
        return ExecutionStatus.Trapped;

    suspend:
        if (status == ExecutionStatus.Paused) Volatile.Write(ref _pauseRequested, 0);
        SavePosition((int)(ip - _codeBase), (int)(f - _stackBase));
        fuelRef = fuel;
        return status;
    }

    /// <summary>
    /// Calls a host function with arguments and results in place at <paramref name="slots"/>. Returns Ready to
    /// continue, or the status that ends the run. Kept out of the run loop so its exception handling does not
    /// pin the loop's locals to memory.
    /// </summary>
    private ExecutionStatus CallHost(HostFunction host, Instance caller, ulong* slots)
    {
        var type = host.Type;
        var resultCount = type.Results.Length;
        if (_hostResults.Length < resultCount) _hostResults = new ulong[resultCount];
        _hostContext.Caller = caller;
        _hostContext.SuspendRequested = false;
        try
        {
            host.Callback(_hostContext, new ReadOnlySpan<ulong>(slots, type.Parameters.Length), _hostResults.AsSpan(0, resultCount));
            if (_hostContext.SuspendRequested)
            {
                WakeAt = _hostContext.WakeAt;
                return ExecutionStatus.HostSuspended;
            }
        }
        catch (ProcessExitException exit)
        {
            ExitCode = exit.Code;
            _function = null;
            return ExecutionStatus.Finished;
        }
        catch (Exception failure)
        {
            Trap = failure as TrapException ?? HostFailure(host, failure);
            _function = null;
            return ExecutionStatus.Trapped;
        }
        for (var i = 0; i < resultCount; i++) slots[i] = _hostResults[i];
        return ExecutionStatus.Ready;
    }

    private void SavePosition(int pc, int fp)
    {
        _pc = pc;
        _fp = fp;
    }

    /// <summary>Switches to a function's fast or step code at a pc, loading its instance's context into fields.</summary>
    private Instr* Enter(CompiledFunction function, bool step, int pc)
    {
        _function = function;
        _step = step;
        var code = step ? function.Step : function.Fast;
        _codeBase = code.Start;
        _branchTable = code.BranchStart;
        if (function.Instance != _instance)
        {
            _instance = function.Instance;
            _globals = _instance.Globals;
            _memory = _instance.Memory;
        }
        return _codeBase + pc;
    }
}
