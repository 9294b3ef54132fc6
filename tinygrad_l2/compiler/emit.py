"""IR → readable numpy: one line per instruction, a temporary read once written inside its
reader, variables named after the tensors (W1, Z1, A1 forward; dZ1, dW1 backward)."""
from __future__ import annotations

import numpy as np

from .analysis import readers
from .symbolic import Value

_INFIX = {np.add: "+", np.subtract: "-", np.multiply: "*", np.true_divide: "/", np.matmul: "@",
          np.power: "**", np.greater: ">", np.less: "<", np.greater_equal: ">=",
          np.less_equal: "<=", np.equal: "==", np.not_equal: "!=", np.bitwise_and: "&",
          np.bitwise_or: "|", np.floor_divide: "//", np.remainder: "%"}
_PREFIX = {np.negative: "-", np.invert: "~"}
_DEFAULTS = {("axis", None), ("keepdims", False)}  # numpy's own defaults: not printed


class Emitter:
    """Prints instructions; `constants` collects what the code reads by name (K0, OP0, ...)."""

    def __init__(self, ir, names, scope=None):
        self.ir, self.names, self.constants, self.inline, self.originals = ir, names, {}, {}, {}
        self.scope = scope or {}  # {id(object): the user's name for it}: `opt`, not OBJ0

    def lines(self, instrs):
        """[(phase, line)] for the instructions not written inside another."""
        self.inline = _inlined(instrs, self.ir, self.names)
        out = []
        self.first_effect = None  # the index in `out` of the first line with an effect
        for instr in instrs:
            if instr.out is not None and id(instr.out) in self.inline:
                continue
            line = self.statement(instr)
            if line:
                if self.first_effect is None and instr.phase != "constants" and _has_effect(instr):
                    self.first_effect = len(out)
                note = instr.note or ""
                if isinstance(note, tuple):  # (format, Value): names are known only now
                    note = note[0].format(self.operand(note[1]))
                out.append((instr.phase, f"    {line}" + (f"  # {note}" if note else "")))
        return out

    def statement(self, instr):
        kind = instr.kind
        if kind == "setitem":
            target, index, value = instr.args
            return f"{self.operand(target)}[{self.index(index)}] = {self.operand(value)}"
        if kind == "ufunc_at":
            return f"np.{instr.fn.__name__}.at({self.arguments(instr.args, instr.kwargs)})"
        if kind == "event":
            return self.event(instr)
        if kind == "check":  # ops.require: the op's check of its input values, every call
            return f"_check({self.arguments(instr.args, {})}, error={self.constant(instr.fn, 'CHECK')})"
        if kind == "lr":
            self.names[id(instr.out)] = "lr"
            return ""
        if kind == "grads":
            pairs = ", ".join(f"(P{i}, {self.operand(v)})" for i, v in zip(instr.fn, instr.args))
            return f"_accumulate_grads([{pairs}])  # into .grad, as backward() does"
        if kind == "call" and instr.writes is not None and (instr.out is None or instr.out.role == "buffer"):
            return self.expression(instr)  # np.fill_diagonal(t3, 0.0); np.multiply(.., out=SCRATCH0)
        if instr.out is None or (kind == "input" and instr.fn[0] == "argument"):
            return ""
        if (kind == "call" and instr.fn in _INFIX and instr.out is instr.args[0]
                and instr.kwargs == {"out": instr.args[0]}):  # W -= dW
            return f"{self.name(instr.out)} {_INFIX[instr.fn]}= {self.operand(instr.args[1])}"
        return f"{self.name(instr.out)} = {self.expression(instr)}"

    def expression(self, instr):
        kind, fn, args = instr.kind, instr.fn, instr.args
        if kind == "call" and fn in _INFIX and len(args) == 2 and not instr.kwargs:
            return f"{self.operand(args[0], True)} {_INFIX[fn]} {self.operand(args[1], True)}"
        if kind == "call" and fn in _PREFIX and not instr.kwargs:
            return f"{_PREFIX[fn]}{self.operand(args[0], True)}"
        if kind == "call":
            name = (self.constant(fn, "F", fn.__name__) if getattr(fn, "is_primitive", False)
                    else _numpy_name(fn))  # an ops.primitive helper, else numpy's own
            return f"{name}({self.arguments(args, instr.kwargs)})"
        if kind == "method":
            receiver = self.operand(args[0], True)
            if fn == "T":
                return f"{receiver}.T"
            return f"{receiver}.{fn}({self.arguments(args[1:], instr.kwargs)})"
        if kind == "getitem":
            return f"{self.operand(args[0], True)}[{self.index(args[1])}]"
        if kind == "input":
            role, i = fn
            if role in _TENSORS:
                return f"{_TENSORS[role]}{i}._data"  # the tensors, read each call
            return self.names[id(instr.out)]
        if kind == "seed":
            return f"np.ones({instr.out.shape}, dtype=np.{instr.out.dtype.name})"
        if kind == "lr_seed":  # the learning rate in the seed (see update.py)
            return f"np.full({instr.out.shape}, lr, dtype=np.{instr.out.dtype.name})"
        if kind == "constant":
            return self.constant(instr.out.example)
        if kind == "read":  # what a written opt.step() reads each call
            source, optimizer, k, key = fn
            owner = self.constant(optimizer, "OBJ")
            if source == "group":
                return f"{owner}.param_groups[{k}][{key!r}]"
            if source == "state":
                return f"{owner}.state[P{k}][{key!r}]"
            return f"{owner}.advance({owner}.param_groups[{k}], {owner}.state[P{key}])"
        if kind == "opaque":
            return f"{self.constant(fn.__self__, 'OP')}.{fn.__name__}({self.arguments(args, {})})"
        raise AssertionError(f"no form for {instr}")

    def event(self, instr):
        kind, owner, *rest = instr.fn
        target = self.constant(owner, "OBJ")
        if kind == "zero_grad":
            return f"{target}.zero_grad()" if rest[0] is True else f"{target}.zero_grad(set_to_none={rest[0]!r})"
        if kind == "mode":
            return f"{target}.train({rest[0]!r})"
        if kind == "requires_grad":
            return f"{target}.requires_grad = {rest[0]!r}"
        return f"{target}.step()"

    def arguments(self, args, kwargs):
        parts = [self.operand(a) for a in args] + [
            f"{k}={self.operand(v)}" for k, v in kwargs.items() if (k, v) not in _DEFAULTS]
        return ", ".join(parts)

    def index(self, index):
        if isinstance(index, tuple):
            inner = ", ".join(self.operand(p) for p in index)
            return inner + ("," if len(index) == 1 else "")
        return self.operand(index)

    def operand(self, value, compound=False):
        if isinstance(value, Value):
            if id(value) in self.inline:
                instr = self.inline[id(value)]
                text = self.expression(instr)
                operator = instr.kind == "call" and (instr.fn in _INFIX or instr.fn in _PREFIX)
                return f"({text})" if compound and operator else text
            return self.name(value)
        return self.literal(value)

    def literal(self, value):
        if isinstance(value, float):
            return _float(value)
        if value is None or isinstance(value, (bool, int, str)) or value is Ellipsis:
            return repr(value)
        if isinstance(value, np.generic) and value.dtype.kind in "fiub":
            item = value.item()
            return f"np.{value.dtype.name}({_float(item) if isinstance(item, float) else repr(item)})"
        if isinstance(value, np.dtype):
            return f"np.{value.name}"
        if isinstance(value, type) and issubclass(value, np.generic):
            return f"np.{value.__name__}"
        if isinstance(value, slice):
            return f"slice({self.literal(value.start)}, {self.literal(value.stop)}, {self.literal(value.step)})"
        if isinstance(value, (tuple, list)):
            inner = ", ".join(self.operand(v) for v in value)
            return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
        return self.constant(value)

    def constant(self, value, prefix="K", preferred=None):
        """The name the code reads `value` by.  An array is held as a read-only view: a
        constant handed on (as a `.grad`, say) and written into would change every later call,
        while an array the user changes in place (a global a Function reads) is read as it is now."""
        for name, held in self.constants.items():
            if held is value or self.originals.get(name) is value:
                return name
        if isinstance(value, np.ndarray) and value.flags.writeable:
            original, value = value, value.view()
            value.flags.writeable = False
            name = self.constant(value, prefix, preferred)
            self.originals[name] = original
            return name
        name = preferred or self.scope.get(id(value))
        taken = getattr(self.names, "taken", set(self.names.values()))
        if name is not None and name.isidentifier() and name not in taken and name not in self.constants:
            self.constants[name] = value
            taken.add(name)
            return name
        name = f"{prefix}{sum(n.startswith(prefix) for n in self.constants)}"
        self.constants[name] = value
        return name

    def name(self, value):
        name = self.names.get(id(value))
        if name is None and value.role == "buffer":  # allocated once, read by name
            self.constants[value.name] = value.example
            name = self.names[id(value)] = value.name
        if name is None:
            self.temporaries = getattr(self, "temporaries", 0) + 1
            name = self.names[id(value)] = f"t{self.temporaries}"
        return name


def _numpy_name(fn):
    if isinstance(fn, np.ufunc) or getattr(np, getattr(fn, "__name__", ""), None) is fn:
        return f"np.{fn.__name__}"
    owner = getattr(fn, "__self__", None)  # np.add.reduce
    if isinstance(owner, np.ufunc):
        return f"np.{owner.__name__}.{fn.__name__}"
    raise AssertionError(f"no numpy name for {fn!r}")


def _penalty_chain(instr, consumers):
    """A penalty line read once by another penalty line (printed inside it)."""
    return (instr.note == "penalty term" and len(consumers) == 1 and consumers[0] is not None
            and consumers[0].note == "penalty term")


def _inlined(instrs, ir, names):
    """{id(Value): its instruction} for temporaries read exactly once, by a later line, with
    no write to any array between the two."""
    use = readers(ir)
    found, position = {}, {id(i): k for k, i in enumerate(instrs)}
    for k, instr in enumerate(instrs):
        out = instr.out
        if (out is None or id(out) in names or instr.writes is not None or "out" in instr.kwargs
                or instr.kind not in ("call", "method", "getitem")
                or (instr.note and not _penalty_chain(instr, use.get(id(out), [])))):
            continue
        consumers = use.get(id(out), [])
        if len(consumers) != 1 or consumers[0] is None or id(consumers[0]) not in position:
            continue
        reader = consumers[0]
        if reader.phase != instr.phase and "constants" in (reader.phase, instr.phase):
            continue  # computed once, above the function: read by name
        if reader.kind in ("event", "opaque") or (reader.kind in ("setitem", "ufunc_at") and reader.args[0] is out):
            continue
        if reader.kwargs.get("out") is out:
            continue
        between = instrs[k + 1:position[id(reader)]]
        if any(b.writes is not None or "out" in b.kwargs or b.kind in ("opaque", "event", "setitem", "ufunc_at",
                                                                       "grads", "read") for b in between):
            continue
        found[id(out)] = instr
    return found


def _has_effect(instr):
    """Does this line change what outlives the call: `.grad`, a parameter, an optimizer's state,
    whatever a custom op's own code does?  (zero_grad does not: twice is the same as once.)"""
    return (instr.phase == "update" or instr.kind in ("grads", "opaque")
            or (instr.kind == "event" and instr.fn[0] != "zero_grad"))


_TENSORS = {"parameter": "P", "module buffer": "B"}  # inputs read from tensors: P0, B0, ...


def _float(value):
    """A float as Python source: repr, but NaN and the infinities as numpy's names (a bare
    `nan` or `inf` is no Python literal)."""
    if value != value:
        return "np.nan"
    if value in (float("inf"), float("-inf")):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(value)
