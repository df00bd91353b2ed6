using Ferry.Wasm;
using Ferry.Wasm.Binary;

namespace Ferry.Engine.Interpreter;

/// <summary>
/// Translates a validated function body from stack code to slot code. Operand i of the Wasm stack lives in
/// slot LocalCount + i (its canonical slot). In fused mode, local.get and constants stay pending on the
/// compile-time stack and are read in place, and a result followed by local.set is written straight to the
/// local; every pending operand is materialised at block boundaries and calls, so both translations agree
/// on all slots wherever execution can stop.
/// </summary>
internal sealed class Translator
{
    private enum OperandKind : byte { Stack, Local, Const }

    private struct Operand
    {
        public OperandKind Kind;
        public int Local;
        public ulong Bits;
    }

    private enum ControlKind : byte { Function, Block, Loop, If, Else }

    private sealed class Control
    {
        public ControlKind Kind;
        public int Base;
        public int Params;
        public int Results;
        public int LoopPc;
        public int ElsePatch = -1;
        public readonly List<int> Patches = [];
        public int LabelArity => Kind == ControlKind.Loop ? Params : Results;
    }

    private readonly WasmFunction _function;
    private readonly Instance _instance;
    private readonly Module _module;
    private readonly FunctionBody _body;
    private readonly bool _fuse;
    private readonly int _localCount;
    private readonly int _paramCount;
    private readonly int _resultCount;

    private readonly List<Instr> _code;
    private readonly List<int> _offsets;
    private readonly List<int> _instructions;
    private readonly List<int> _branchTable;
    private readonly List<WasmFunction> _callees;
    private readonly List<HostFunction> _hostCallees;
    private readonly List<Control> _controls = [];
    private Operand[] _stack = new Operand[16];
    private int _height;
    private int _maxHeight;

    private int _currentOffset;
    private int _currentInstruction;
    private int _instructionIndex;
    private int _head = -1;
    private bool _needHead = true;
    /// <summary>Pc of the last single-result instruction whose destination is the top operand's canonical slot, or -1.</summary>
    private int _producer = -1;

    // Fast mode records block heads by Wasm instruction index; step mode records every instruction's head.
    private readonly List<(int Instruction, int Pc)> _heads;
    private int[] _stepPcOfInstruction = [];

    /// <summary>
    /// The growing lists of one translation, kept per thread and reused: a restore translates the functions on the call
    /// stack inside a migration's downtime, and these lists' growth was most of what it allocated (about 190 bytes per
    /// instruction), enough to bring on a gen0 collection in about one stop in three.
    /// </summary>
    private sealed class Scratch
    {
        // Larger lists are dropped after use rather than kept for the thread's lifetime.
        private const int KeptCapacity = 1 << 16;

        public readonly List<Instr> Code = [];
        public readonly List<int> Offsets = [];
        public readonly List<int> Instructions = [];
        public readonly List<int> BranchTable = [];
        public readonly List<WasmFunction> Callees = [];
        public readonly List<HostFunction> HostCallees = [];
        public readonly List<(int Instruction, int Pc)> Heads = [];

        [ThreadStatic]
        private static Scratch? t_scratch;

        public static Scratch ForThisThread() => t_scratch ??= new Scratch();

        public void Clear()
        {
            Code.Clear();
            Offsets.Clear();
            Instructions.Clear();
            BranchTable.Clear();
            Callees.Clear();
            HostCallees.Clear();
            Heads.Clear();
        }

        public void Release()
        {
            Clear();
            if (Code.Capacity > KeptCapacity || Heads.Capacity > KeptCapacity || BranchTable.Capacity > KeptCapacity) t_scratch = null;
        }
    }

    private Translator(WasmFunction function, bool fuse, Scratch scratch)
    {
        scratch.Clear();
        _code = scratch.Code;
        _offsets = scratch.Offsets;
        _instructions = scratch.Instructions;
        _branchTable = scratch.BranchTable;
        _callees = scratch.Callees;
        _hostCallees = scratch.HostCallees;
        _heads = scratch.Heads;
        _function = function;
        _instance = function.Instance;
        _module = _instance.Module;
        _body = _module.Codes[function.Index - _module.ImportedFunctionCount];
        _fuse = fuse;
        _paramCount = function.Type.Parameters.Length;
        _resultCount = function.Type.Results.Length;
        _localCount = _paramCount + _body.LocalCount;
    }

    public static CompiledFunction Compile(WasmFunction function)
    {
        var scratch = Scratch.ForThisThread();
        try
        {
            return Compile(function, scratch);
        }
        finally
        {
            scratch.Release();
        }
    }

    /// <summary>Both translations, one after the other in <paramref name="scratch"/>: what the step one leaves there is read before the fast one begins.</summary>
    private static CompiledFunction Compile(WasmFunction function, Scratch scratch)
    {
        var step = new Translator(function, fuse: false, scratch);
        var stepCode = step.Translate();
        var stepPcs = new int[step._instructionIndex];
        Array.Fill(stepPcs, -1);
        foreach (var (instruction, pc) in step._heads) stepPcs[instruction] = pc;

        var fast = new Translator(function, fuse: true, scratch);
        var fastCode = fast.Translate();
        foreach (var (instruction, pc) in fast._heads)
        {
            ref var head = ref fastCode.Instrs[pc];
            var stepPc = stepPcs[instruction];
            head.B = stepPc;
            ref var stepHead = ref stepCode.Instrs[stepPc];
            stepHead.B = pc;
            stepHead.C = (int)head.Imm;
        }

        var stepReturnPcs = new Dictionary<int, int>();
        for (var pc = 0; pc < stepCode.Instrs.Length; pc++)
        {
            if (stepCode.Instrs[pc].Op is Op.CallWasm or Op.CallHost or Op.CallIndirect) stepReturnPcs[stepCode.Instructions[pc]] = pc + 1;
        }

        return new CompiledFunction
        {
            Function = function,
            Instance = function.Instance,
            Fast = fastCode,
            Step = stepCode,
            ParamCount = fast._paramCount,
            ResultCount = fast._resultCount,
            LocalCount = fast._localCount,
            FrameSize = fast._localCount + Math.Max(fast._maxHeight, step._maxHeight) + 1,
            // Both translations emit calls in the same order, so they share one callee list.
            Callees = [.. fast._callees],
            HostCallees = [.. fast._hostCallees],
            StepPcOfInstruction = stepPcs,
            StepReturnPcOfCall = stepReturnPcs,
        };
    }

    private CodeBlock Translate()
    {
        var reader = new WasmReader(_body.Code.Span, _body.CodeOffset);
        _controls.Add(new Control { Kind = ControlKind.Function, Base = 0, Params = 0, Results = _resultCount });
        var dead = false;
        var deadDepth = 0;
        while (_controls.Count > 0)
        {
            _currentOffset = reader.Offset;
            var opcode = reader.ReadByte();
            var index = _instructionIndex++;
            _currentInstruction = index;
            if (dead && LiveCalls.SkipsUnreachable(ref reader, opcode, ref deadDepth)) continue;
            if (opcode is not (Opcodes.Block or Opcodes.Loop or Opcodes.End or Opcodes.Else))
            {
                BeginInstruction(index);
            }
            dead = TranslateInstruction(ref reader, opcode, dead);
        }
        MakeBranchesRelative();
        return new CodeBlock { Instrs = [.. _code], Offsets = [.. _offsets], Instructions = [.. _instructions], BranchTable = [.. _branchTable] };
    }

    /// <summary>Branch targets become offsets from the instruction after the branch, so the run loop needs no code base.</summary>
    private void MakeBranchesRelative()
    {
        for (var pc = 0; pc < _code.Count; pc++)
        {
            var instr = _code[pc];
            if (instr.Op is Op.Br or Op.BrIf or Op.BrIfNot or >= Op.BrI32Eqz)
            {
                instr.A -= pc + 1;
                _code[pc] = instr;
            }
            else if (instr.Op == Op.BrTable)
            {
                for (var i = 0; i < instr.C; i++) _branchTable[instr.A + i] -= pc + 1;
            }
        }
    }

    /// <summary>Charges one unit of fuel for the instruction at <paramref name="index"/>.</summary>
    private void BeginInstruction(int index)
    {
        if (_fuse)
        {
            if (_needHead) EmitHead();
            var head = _code[_head];
            if (head.A < 0)
            {
                head.A = index;
                _heads.Add((index, _head));
            }
            head.Imm++;
            _code[_head] = head;
        }
        else
        {
            _heads.Add((index, _code.Count));
            Emit(new Instr(Op.FuelStep, index, -1));
        }
    }

    /// <summary>Starts a new straight-line block in fast code (a branch target or the point after a branch or call).</summary>
    private void EmitHead()
    {
        _needHead = false;
        if (_head >= 0 && _head == _code.Count - 1 && _code[_head].Imm == 0) return;
        _head = _code.Count;
        Emit(new Instr(Op.FuelFast, -1, -1));
    }

    /// <summary>The pc a branch to a label bound here should target.</summary>
    private int BindLabel()
    {
        _producer = -1;
        if (!_fuse) return _code.Count;
        EmitHead();
        return _head;
    }

    private void EndBlock()
    {
        _needHead = true;
        _producer = -1;
    }

    private int Emit(Instr instr)
    {
        _code.Add(instr);
        _offsets.Add(_currentOffset);
        _instructions.Add(_currentInstruction);
        _producer = -1;
        return _code.Count - 1;
    }

    private void EmitProducer(Instr instr)
    {
        var pc = Emit(instr);
        Push(OperandKind.Stack);
        _producer = pc;
    }

    private int Canonical(int operandIndex) => _localCount + operandIndex;

    private void Push(OperandKind kind, int local = 0, ulong bits = 0)
    {
        if (_height == _stack.Length) Array.Resize(ref _stack, _stack.Length * 2);
        _stack[_height++] = new Operand { Kind = kind, Local = local, Bits = bits };
        if (_height > _maxHeight) _maxHeight = _height;
    }

    private void PushConst(ulong bits)
    {
        if (_fuse)
        {
            Push(OperandKind.Const, bits: bits);
        }
        else
        {
            Emit(new Instr(Op.Const, Canonical(_height), imm: bits));
            Push(OperandKind.Stack);
        }
    }

    /// <summary>Writes a pending operand into its canonical slot.</summary>
    private void Materialize(int i)
    {
        ref var operand = ref _stack[i];
        if (operand.Kind == OperandKind.Local) EmitPlain(new Instr(Op.Copy, Canonical(i), operand.Local));
        else if (operand.Kind == OperandKind.Const) EmitPlain(new Instr(Op.Const, Canonical(i), imm: operand.Bits));
        else return;
        operand.Kind = OperandKind.Stack;
    }

    /// <summary>Emits without disturbing the producer mark (materialising never writes the top's slot after it is produced).</summary>
    private void EmitPlain(Instr instr)
    {
        var producer = _producer;
        Emit(instr);
        _producer = producer;
    }

    private void MaterializeAll()
    {
        for (var i = 0; i < _height; i++) Materialize(i);
        _producer = -1;
    }

    /// <summary>The slot holding operand i, materialising a constant into its canonical slot.</summary>
    private int SlotOf(int i)
    {
        ref var operand = ref _stack[i];
        if (operand.Kind == OperandKind.Local) return operand.Local;
        if (operand.Kind == OperandKind.Const) Materialize(i);
        return Canonical(i);
    }

    private void Pop(int count = 1) => _height -= count;

    private Control Label(uint depth) => _controls[_controls.Count - 1 - (int)depth];

    private (int Params, int Results) BlockArity(long blockType)
    {
        if (blockType == -64) return (0, 0);
        if (blockType < 0) return (0, 1);
        var type = _module.Types[blockType];
        return (type.Parameters.Length, type.Results.Length);
    }

    private bool TranslateInstruction(ref WasmReader r, byte opcode, bool dead)
    {
        switch (opcode)
        {
            case Opcodes.Unreachable:
                Emit(new Instr(Op.Unreachable));
                return true;
            case Opcodes.Nop:
                return false;
            case Opcodes.Block:
            case Opcodes.Loop:
            {
                var (parameters, results) = BlockArity(r.ReadVarS33());
                MaterializeAll();
                var control = new Control
                {
                    Kind = opcode == Opcodes.Block ? ControlKind.Block : ControlKind.Loop,
                    Base = _height - parameters,
                    Params = parameters,
                    Results = results,
                };
                if (opcode == Opcodes.Loop) control.LoopPc = BindLabel();
                _controls.Add(control);
                return false;
            }
            case Opcodes.If:
            {
                var (parameters, results) = BlockArity(r.ReadVarS33());
                var control = new Control { Kind = ControlKind.If, Params = parameters, Results = results };
                control.ElsePatch = EmitConditionalBranch(negate: true);
                control.Base = _height - parameters;
                _controls.Add(control);
                EndBlock();
                return false;
            }
            case Opcodes.Else:
            {
                var control = _controls[^1];
                if (!dead)
                {
                    MaterializeAll();
                    control.Patches.Add(Emit(new Instr(Op.Br)));
                }
                control.Kind = ControlKind.Else;
                var elsePc = BindLabel();
                PatchInstr(control.ElsePatch, elsePc);
                control.ElsePatch = -1;
                _height = control.Base + control.Params;
                for (var i = control.Base; i < _height; i++) _stack[i].Kind = OperandKind.Stack;
                return false;
            }
            case Opcodes.End:
                return EndControl(dead);
            case Opcodes.Br:
                EmitBranch(Label(r.ReadVarU32()));
                return true;
            case Opcodes.BrIf:
            {
                var control = Label(r.ReadVarU32());
                if (control.Kind != ControlKind.Function && !NeedsCopies(control))
                {
                    var pc = EmitConditionalBranch(negate: false);
                    AddPatch(control, pc);
                }
                else
                {
                    var skip = EmitConditionalBranch(negate: true);
                    EmitBranch(control);
                    PatchInstr(skip, BindLabel());
                }
                EndBlock();
                return false;
            }
            case Opcodes.BrTable:
                TranslateBrTable(ref r);
                return true;
            case Opcodes.Return:
                EmitReturn();
                return true;
            case Opcodes.Call:
                EmitCall(r.ReadVarU32());
                return false;
            case Opcodes.CallIndirect:
            {
                var typeIndex = r.ReadVarU32();
                var table = r.ReadVarU32();
                var type = _module.Types[typeIndex];
                MaterializeAll();
                var argBase = Canonical(_height - 1 - type.Parameters.Length);
                Emit(new Instr(Op.CallIndirect, _instance.TypeIds[typeIndex], argBase, (int)table, (ulong)Canonical(_height - 1)));
                Pop(1 + type.Parameters.Length);
                for (var i = 0; i < type.Results.Length; i++) Push(OperandKind.Stack);
                EndBlock();
                return false;
            }
            case Opcodes.Drop:
                Pop();
                _producer = -1;
                return false;
            case Opcodes.Select:
            case Opcodes.SelectTyped:
            {
                if (opcode == Opcodes.SelectTyped)
                {
                    var count = r.ReadVarU32();
                    for (var i = 0; i < count; i++) r.ReadByte();
                }
                var condition = SlotOf(_height - 1);
                var second = SlotOf(_height - 2);
                var first = SlotOf(_height - 3);
                Pop(3);
                EmitProducer(new Instr(Op.Select, Canonical(_height), first, second, (ulong)condition));
                return false;
            }
            case Opcodes.LocalGet:
            {
                var local = (int)r.ReadVarU32();
                if (_fuse)
                {
                    Push(OperandKind.Local, local);
                }
                else
                {
                    Emit(new Instr(Op.Copy, Canonical(_height), local));
                    Push(OperandKind.Stack);
                }
                return false;
            }
            case Opcodes.LocalSet:
                SetLocal((int)r.ReadVarU32(), tee: false);
                return false;
            case Opcodes.LocalTee:
                SetLocal((int)r.ReadVarU32(), tee: true);
                return false;
            case Opcodes.GlobalGet:
                EmitProducer(new Instr(Op.GlobalGet, Canonical(_height), (int)r.ReadVarU32()));
                return false;
            case Opcodes.GlobalSet:
            {
                var global = (int)r.ReadVarU32();
                var source = SlotOf(_height - 1);
                Pop();
                Emit(new Instr(Op.GlobalSet, global, source));
                return false;
            }
            case Opcodes.TableGet:
            {
                var table = (int)r.ReadVarU32();
                var element = SlotOf(_height - 1);
                Pop();
                EmitProducer(new Instr(Op.TableGet, Canonical(_height), table, element));
                return false;
            }
            case Opcodes.TableSet:
            {
                var table = (int)r.ReadVarU32();
                var value = SlotOf(_height - 1);
                var element = SlotOf(_height - 2);
                Pop(2);
                Emit(new Instr(Op.TableSet, table, element, value));
                return false;
            }
            case >= Opcodes.I32Load and <= Opcodes.I64Load32U:
            {
                r.ReadVarU32();
                var offset = r.ReadVarU32();
                var address = SlotOf(_height - 1);
                Pop();
                EmitProducer(new Instr(Op.I32Load + (opcode - Opcodes.I32Load), Canonical(_height), address, imm: offset));
                return false;
            }
            case >= Opcodes.I32Store and <= Opcodes.I64Store32:
            {
                r.ReadVarU32();
                var offset = r.ReadVarU32();
                var value = SlotOf(_height - 1);
                var address = SlotOf(_height - 2);
                Pop(2);
                Emit(new Instr(Op.I32Store + (opcode - Opcodes.I32Store), address, value, imm: offset));
                return false;
            }
            case Opcodes.MemorySize:
                r.ReadByte();
                EmitProducer(new Instr(Op.MemorySize, Canonical(_height)));
                return false;
            case Opcodes.MemoryGrow:
            {
                r.ReadByte();
                var delta = SlotOf(_height - 1);
                Pop();
                EmitProducer(new Instr(Op.MemoryGrow, Canonical(_height), delta));
                return false;
            }
            case Opcodes.I32Const:
                PushConst((uint)r.ReadVarI32());
                return false;
            case Opcodes.I64Const:
                PushConst((ulong)r.ReadVarI64());
                return false;
            case Opcodes.F32Const:
                PushConst(r.ReadF32Bits());
                return false;
            case Opcodes.F64Const:
                PushConst(r.ReadF64Bits());
                return false;
            case Opcodes.I32ReinterpretF32 or Opcodes.I64ReinterpretF64 or Opcodes.F32ReinterpretI32 or Opcodes.F64ReinterpretI64
                or Opcodes.I64ExtendI32U:
                // Identity on slots: 32-bit values are always stored zero-extended.
                return false;
            case Opcodes.RefNull:
                r.ReadByte();
                PushConst(0);
                return false;
            case Opcodes.RefIsNull:
                EmitUnary(Op.I64Eqz);
                return false;
            case Opcodes.RefFunc:
                PushConst((ulong)_instance.Functions[r.ReadVarU32()].Address + 1);
                return false;
            case Opcodes.PrefixFC:
                TranslatePrefixed(ref r);
                return false;
            default:
                if (NumericOps.Binary(opcode) is { } binary) EmitBinary(binary);
                else if (NumericOps.Unary(opcode) is { } unary) EmitUnary(unary);
                else throw new InvalidOperationException($"untranslatable opcode 0x{opcode:x2} at byte 0x{_currentOffset:x}");
                return false;
        }
    }

    private void TranslatePrefixed(ref WasmReader r)
    {
        var sub = r.ReadVarU32();
        switch (sub)
        {
            case <= OpcodesFC.I64TruncSatF64U:
                EmitUnary(Op.I32TruncSatF32S + (int)sub);
                return;
            case OpcodesFC.MemoryInit:
            {
                var segment = (int)r.ReadVarU32();
                r.ReadByte();
                EmitBulk(Op.MemoryInit, 3, segment);
                return;
            }
            case OpcodesFC.DataDrop:
                Emit(new Instr(Op.DataDrop, (int)r.ReadVarU32()));
                return;
            case OpcodesFC.MemoryCopy:
                r.ReadByte();
                r.ReadByte();
                EmitBulk(Op.MemoryCopy, 3, 0);
                return;
            case OpcodesFC.MemoryFill:
                r.ReadByte();
                EmitBulk(Op.MemoryFill, 3, 0);
                return;
            case OpcodesFC.TableInit:
            {
                var segment = (int)r.ReadVarU32();
                var table = (int)r.ReadVarU32();
                EmitBulk(Op.TableInit, 3, segment, table);
                return;
            }
            case OpcodesFC.ElemDrop:
                Emit(new Instr(Op.ElemDrop, (int)r.ReadVarU32()));
                return;
            case OpcodesFC.TableCopy:
            {
                var destination = (int)r.ReadVarU32();
                var source = (int)r.ReadVarU32();
                EmitBulk(Op.TableCopy, 3, destination, source);
                return;
            }
            case OpcodesFC.TableGrow:
            {
                var table = (int)r.ReadVarU32();
                MaterializeAll();
                var operands = Canonical(_height - 2);
                Pop(2);
                EmitProducer(new Instr(Op.TableGrow, Canonical(_height), operands, table));
                return;
            }
            case OpcodesFC.TableSize:
                EmitProducer(new Instr(Op.TableSize, Canonical(_height), (int)r.ReadVarU32()));
                return;
            case OpcodesFC.TableFill:
                EmitBulk(Op.TableFill, 3, (int)r.ReadVarU32());
                return;
            default:
                throw new InvalidOperationException($"untranslatable opcode 0xfc {sub} at byte 0x{_currentOffset:x}");
        }
    }

    /// <summary>An instruction taking <paramref name="operands"/> consecutive slots starting at B.</summary>
    private void EmitBulk(Op op, int operands, int a, int c = 0)
    {
        MaterializeAll();
        var first = Canonical(_height - operands);
        Pop(operands);
        Emit(new Instr(op, a, first, c));
    }

    private void EmitUnary(Op op)
    {
        var source = SlotOf(_height - 1);
        Pop();
        EmitProducer(new Instr(op, Canonical(_height), source));
    }

    private void EmitBinary(Op op)
    {
        ref var right = ref _stack[_height - 1];
        ref var left = ref _stack[_height - 2];
        if (_fuse && right.Kind == OperandKind.Const && NumericOps.WithImmediate(op) is { } immediateOp)
        {
            var bits = right.Bits;
            var leftSlot = SlotOf(_height - 2);
            Pop(2);
            EmitProducer(new Instr(immediateOp, Canonical(_height), leftSlot, imm: bits));
            return;
        }
        if (_fuse && left.Kind == OperandKind.Const && NumericOps.IsCommutative(op) && NumericOps.WithImmediate(op) is { } swappedOp)
        {
            var bits = left.Bits;
            var rightSlot = SlotOf(_height - 1);
            Pop(2);
            EmitProducer(new Instr(swappedOp, Canonical(_height), rightSlot, imm: bits));
            return;
        }
        var rhs = SlotOf(_height - 1);
        var lhs = SlotOf(_height - 2);
        Pop(2);
        EmitProducer(new Instr(op, Canonical(_height), lhs, rhs));
    }

    private void SetLocal(int local, bool tee)
    {
        var top = _height - 1;
        if (_fuse && _producer >= 0 && _stack[top].Kind == OperandKind.Stack && !PendingReads(local, top))
        {
            var instr = _code[_producer];
            instr.A = local;
            _code[_producer] = instr;
            _producer = -1;
            Pop();
            if (tee) Push(OperandKind.Local, local);
            return;
        }
        var operand = _stack[top];
        if (operand.Kind == OperandKind.Local && operand.Local == local)
        {
            if (!tee) Pop();
            return;
        }
        for (var i = 0; i < top; i++)
        {
            if (_stack[i].Kind == OperandKind.Local && _stack[i].Local == local) Materialize(i);
        }
        if (operand.Kind == OperandKind.Const) Emit(new Instr(Op.Const, local, imm: operand.Bits));
        else Emit(new Instr(Op.Copy, local, operand.Kind == OperandKind.Local ? operand.Local : Canonical(top)));
        if (!tee) Pop();
    }

    /// <summary>Whether an operand below <paramref name="top"/> still reads <paramref name="local"/> in place.</summary>
    private bool PendingReads(int local, int top)
    {
        for (var i = 0; i < top; i++)
        {
            if (_stack[i].Kind == OperandKind.Local && _stack[i].Local == local) return true;
        }
        return false;
    }

    /// <summary>Pops an i32 condition and emits a branch taken when it is non-zero (or zero, when negated); returns its pc for patching.</summary>
    private int EmitConditionalBranch(bool negate)
    {
        if (_fuse && _producer == _code.Count - 1 && _stack[_height - 1].Kind == OperandKind.Stack)
        {
            var producer = _code[_producer];
            if (NumericOps.CompareBranch(producer.Op, negate) is { } branchOp)
            {
                _code.RemoveAt(_code.Count - 1);
                _offsets.RemoveAt(_offsets.Count - 1);
                _instructions.RemoveAt(_instructions.Count - 1);
                Pop();
                MaterializeAll();
                return Emit(new Instr(branchOp, 0, producer.B, producer.C, producer.Imm));
            }
        }
        var condition = SlotOf(_height - 1);
        Pop();
        MaterializeAll();
        return Emit(new Instr(negate ? Op.BrIfNot : Op.BrIf, 0, condition));
    }

    private void PatchInstr(int pc, int target)
    {
        var instr = _code[pc];
        instr.A = target;
        _code[pc] = instr;
    }

    private void AddPatch(Control control, int pc)
    {
        if (control.Kind == ControlKind.Loop) PatchInstr(pc, control.LoopPc);
        else control.Patches.Add(pc);
    }

    /// <summary>Whether branching to <paramref name="control"/> must move the carried values.</summary>
    private bool NeedsCopies(Control control)
    {
        var arity = control.LabelArity;
        for (var i = 0; i < arity; i++)
        {
            var source = _height - arity + i;
            if (_stack[source].Kind != OperandKind.Stack || source != control.Base + i) return true;
        }
        return false;
    }

    private void EmitCarry(Control control)
    {
        var arity = control.LabelArity;
        for (var i = 0; i < arity; i++)
        {
            var source = _height - arity + i;
            var target = Canonical(control.Base + i);
            ref var operand = ref _stack[source];
            switch (operand.Kind)
            {
                case OperandKind.Const:
                    Emit(new Instr(Op.Const, target, imm: operand.Bits));
                    break;
                case OperandKind.Local:
                    Emit(new Instr(Op.Copy, target, operand.Local));
                    break;
                default:
                    if (Canonical(source) != target) Emit(new Instr(Op.Copy, target, Canonical(source)));
                    break;
            }
        }
    }

    /// <summary>An unconditional branch to a label, carrying its values.</summary>
    private void EmitBranch(Control control)
    {
        if (control.Kind == ControlKind.Function)
        {
            EmitReturn();
            return;
        }
        MaterializeBelow(_height - control.LabelArity);
        EmitCarry(control);
        AddPatch(control, Emit(new Instr(Op.Br)));
    }

    /// <summary>Materialises operands [0, count) so the stack is canonical wherever the branch lands.</summary>
    private void MaterializeBelow(int count)
    {
        for (var i = 0; i < count; i++) Materialize(i);
    }

    private void EmitReturn()
    {
        for (var i = _height - _resultCount; i < _height; i++)
        {
            if (_stack[i].Kind == OperandKind.Local && _stack[i].Local < _resultCount) Materialize(i);
        }
        for (var i = 0; i < _resultCount; i++)
        {
            var source = _height - _resultCount + i;
            ref var operand = ref _stack[source];
            switch (operand.Kind)
            {
                case OperandKind.Const:
                    Emit(new Instr(Op.Const, i, imm: operand.Bits));
                    break;
                case OperandKind.Local:
                    if (operand.Local != i) Emit(new Instr(Op.Copy, i, operand.Local));
                    break;
                default:
                    if (Canonical(source) != i) Emit(new Instr(Op.Copy, i, Canonical(source)));
                    break;
            }
        }
        Emit(new Instr(Op.Return));
    }

    private void TranslateBrTable(ref WasmReader r)
    {
        var count = (int)r.ReadVarU32();
        var depths = new uint[count + 1];
        for (var i = 0; i <= count; i++) depths[i] = r.ReadVarU32();
        var index = SlotOf(_height - 1);
        Pop();
        MaterializeAll();
        var first = _branchTable.Count;
        Emit(new Instr(Op.BrTable, first, index, count + 1));
        for (var i = 0; i <= count; i++) _branchTable.Add(-1);
        var stubs = new Dictionary<uint, int>();
        for (var i = 0; i <= count; i++)
        {
            var control = Label(depths[i]);
            if (control.Kind != ControlKind.Function && !NeedsCopies(control))
            {
                if (control.Kind == ControlKind.Loop) _branchTable[first + i] = control.LoopPc;
                else control.Patches.Add(~(first + i));
                continue;
            }
            if (!stubs.TryGetValue(depths[i], out var stub))
            {
                stub = _code.Count;
                stubs.Add(depths[i], stub);
                EmitBranch(control);
            }
            _branchTable[first + i] = stub;
        }
    }

    private void EmitCall(uint functionIndex)
    {
        var callee = _instance.Functions[functionIndex];
        var parameters = callee.Type.Parameters.Length;
        MaterializeAll();
        var argBase = Canonical(_height - parameters);
        if (callee is WasmFunction wasm)
        {
            Emit(new Instr(Op.CallWasm, _callees.Count, argBase));
            _callees.Add(wasm);
        }
        else
        {
            Emit(new Instr(Op.CallHost, _hostCallees.Count, argBase));
            _hostCallees.Add((HostFunction)callee);
        }
        Pop(parameters);
        for (var i = 0; i < callee.Type.Results.Length; i++) Push(OperandKind.Stack);
        EndBlock();
    }

    private bool EndControl(bool dead)
    {
        var control = _controls[^1];
        _controls.RemoveAt(_controls.Count - 1);
        if (control.Kind == ControlKind.Function)
        {
            if (!dead) EmitReturn();
            return false;
        }
        if (!dead) MaterializeAll();
        var hasIncoming = control.Patches.Count > 0 || control.ElsePatch >= 0;
        if (hasIncoming)
        {
            var pc = BindLabel();
            foreach (var patch in control.Patches)
            {
                if (patch >= 0) PatchInstr(patch, pc);
                else _branchTable[~patch] = pc;
            }
            if (control.ElsePatch >= 0) PatchInstr(control.ElsePatch, pc);
        }
        _height = control.Base + control.Results;
        for (var i = control.Base; i < _height; i++) _stack[i].Kind = OperandKind.Stack;
        if (_height > _maxHeight) _maxHeight = _height;
        _producer = -1;
        return dead && !hasIncoming;
    }
}
