"""Symbolic arrays: an op's own `forward` and `backward`, run on stand-ins, write the IR.

Every op is written once, against numpy.  Eager execution runs that code on ndarrays.  To
compile a step, the same methods run on `Value`s: a `Value` takes part in numpy's dispatch
protocols (`__array_ufunc__`, `__array_function__`) and in Python's operators, so that
`np.exp(x)`, `x @ w`, `g.sum(axis=0)` or `x[rows, y]` each append one `Instr` to the
`Recording` and return a new `Value` — the jaxpr/TinyJit idea on plain numpy.  A `Value`
carries the array the trace computed (`example`), so shapes, dtypes and Python-level
decisions on them (`if g.ndim == 0`) are exactly those of the eager run.

What cannot be recorded raises `NotSymbolic`: reading a value into Python (`bool`, `float`,
`.item()`), handing a Value to a function outside numpy's protocols, or writing one into a
plain ndarray.  The op is then replayed through its own methods instead (see lower.py), so a
custom op never gets someone else's math.
"""
from __future__ import annotations

import operator
import threading
from typing import Any

import numpy as np

from ..ops.base import ARITHMETIC, operators_as_ufuncs


class NotSymbolic(Exception):
    """The op's code needs a concrete value, or a numpy feature with no recorded form."""


class Instr:
    """One line of the program: `out = fn(*args, **kwargs)`.

    kind: "call" (fn is a numpy function or ufunc), "ufunc_at" (fn is a ufunc: fn.at),
    "method" (fn is a method name; args[0] the receiver), "getitem", "setitem" (writes
    args[0]), "input", "opaque" (fn is an op replayed through its own methods), "event" (a
    Python call the step made: fn is a callable, out None).  `writes` is the Value whose
    array the instruction overwrites (setitem, ufunc with out=, ufunc.at), or None.
    """
    __slots__ = ("kind", "fn", "args", "kwargs", "out", "writes", "fresh", "note", "node", "phase")

    def __init__(self, kind, fn, args=(), kwargs=None, out=None, writes=None, fresh=False):
        self.kind, self.fn, self.args, self.kwargs = kind, fn, tuple(args), dict(kwargs or {})
        self.out, self.writes, self.fresh = out, writes, fresh
        self.note, self.node, self.phase = "", None, "forward"

    def reads(self):
        """Every Value this instruction reads (nested in tuples, lists, slices, kwargs)."""
        return [v for v in _walk((self.args, self.kwargs)) if isinstance(v, Value)]

    def __repr__(self):
        return f"Instr({self.kind}, {getattr(self.fn, '__name__', self.fn)}, out={self.out})"


class Value:
    """A symbolic array: the instruction that makes it, and the traced array (`example`)."""

    __array_priority__ = 10_000  # numpy defers to our operators: ndarray * Value -> Value
    __slots__ = ("example", "instr", "name", "role", "__weakref__")

    def __init__(self, example, instr=None, role="temporary"):
        self.example, self.instr, self.name, self.role = example, instr, None, role

    # ---- static facts: read freely (they are part of the trace key) --------------------------
    shape = property(lambda self: np.shape(self.example))
    dtype = property(lambda self: self.example.dtype)
    ndim = property(lambda self: np.ndim(self.example))
    size = property(lambda self: np.size(self.example))
    flags = property(lambda self: self.example.flags)
    base = property(lambda self: None)  # views are tracked by the IR's alias analysis instead

    def __len__(self):
        return len(self.example)

    # ---- what needs a value: not recordable --------------------------------------------------
    def _concrete(self, *_):
        raise NotSymbolic("the op reads an array's value into Python (bool, float, item)")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = item = tolist = _concrete

    def __array__(self, *_, **__):
        raise NotSymbolic("the op converts a recorded array with np.asarray or stores it in a "
                          "plain ndarray")

    def record_primitive(self, fn, args, kwargs):
        """ops.primitive: one instruction calling `fn` (a new array), printed by its name."""
        return current().record("call", fn, args, kwargs, fn, fresh=True)

    def record_check(self, error, *arrays):
        """ops.require on a recorded boolean: a check the compiled step runs every call."""
        current().instrs.append(Instr("check", error, (self, *arrays)))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # ---- numpy's protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return current().ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return current().call(func, args, kwargs)

    # ---- Python's operators and ndarray methods, as the ufuncs and functions they are ---------
    def __getitem__(self, index):
        return current().record("getitem", None, (self, index), {}, operator.getitem)

    def __setitem__(self, index, value):
        current().record("setitem", None, (self, index, value), {}, operator.setitem, writes=self)

    @property
    def T(self):  # noqa: N802 - numpy's name
        return current().record("method", "T", (self,), {}, lambda a: a.T)



def _method(name, fresh=False):
    """An ndarray method on a Value, recorded (fresh: it always returns a new array)."""
    def method(self, *args, **kwargs):
        return current().record("method", name, (self, *args), kwargs,
                                lambda a, *r, **k: getattr(a, name)(*r, **k), fresh=fresh)
    method.__name__ = name
    return method


for _name in ("reshape", "transpose", "ravel", "squeeze", "swapaxes", "view"):
    setattr(Value, _name, _method(_name))
for _name in ("sum", "mean", "max", "min", "prod", "copy", "astype", "any", "all"):
    setattr(Value, _name, _method(_name, fresh=True))


operators_as_ufuncs(Value, ARITHMETIC + (("floordiv", np.floor_divide), ("mod", np.remainder),
                                         ("and", np.bitwise_and), ("or", np.bitwise_or),
                                         ("xor", np.bitwise_xor)),
                    unary=(("neg", np.negative), ("abs", np.absolute), ("invert", np.invert)))
setattr(Value, "__hash__", object.__hash__)  # __eq__ records; identity stays the hash


# ---- the recording ---------------------------------------------------------------------------

# numpy functions whose result is always a new array (never a view of an input); any other
# function may return a view, which the IR treats as sharing its inputs' memory.
_FRESH_FUNCTIONS = {np.where, np.clip, np.concatenate, np.stack, np.zeros_like, np.ones_like,
                    np.empty_like, np.full_like, np.vdot, np.dot, np.sum, np.mean, np.cumsum}


class Recording:
    """The instructions of one symbolic run (a list), made current while an op runs."""

    def __init__(self):
        self.instrs: list[Instr] = []

    def ufunc(self, ufunc, method, inputs, kwargs):
        out = kwargs.pop("out", None)
        if out is not None:
            out = out[0] if isinstance(out, tuple) and len(out) == 1 else out
            if not isinstance(out, Value):
                raise NotSymbolic(f"the op writes a recorded result into a plain array "
                                  f"({ufunc.__name__}(..., out=ndarray))")
        if method == "at":
            target = inputs[0]
            if not isinstance(target, Value):
                raise NotSymbolic("the op scatters into a plain array (ufunc.at)")
            self.record("ufunc_at", ufunc, inputs, kwargs, lambda *a, **k: ufunc.at(*a, **k),
                        writes=target)
            return None
        if method != "__call__":
            reduce = getattr(ufunc, method)
            return self.record("call", reduce, inputs, kwargs, reduce, fresh=True)
        if out is not None:
            kwargs["out"] = out
            return self.record("call", ufunc, inputs, kwargs, ufunc, writes=out)
        return self.record("call", ufunc, inputs, kwargs, ufunc, fresh=True)

    def call(self, func, args, kwargs):
        if "out" in kwargs and kwargs["out"] is not None:
            if not isinstance(kwargs["out"], Value):
                raise NotSymbolic(f"the op writes into a plain array ({func.__name__}(out=...))")
            return self.record("call", func, args, kwargs, func, writes=kwargs["out"])
        return self.record("call", func, args, kwargs, func, fresh=func in _FRESH_FUNCTIONS)

    def record(self, kind, fn, args, kwargs, compute, writes=None, fresh=False):
        """Compute the example result on the traced arrays, append the instruction, and
        return the result as a Value (or Values, for a function returning several)."""
        result = compute(*_examples(args), **_examples(kwargs))
        if result is None and kind == "call" and writes is None:  # np.copyto, np.fill_diagonal:
            if not isinstance(args[0] if args else None, Value):  # numpy's in-place functions
                raise NotSymbolic(f"the op writes into a plain array ({getattr(fn, '__name__', fn)})")
            writes = args[0]
        instr = Instr(kind, fn if kind in ("call", "ufunc_at", "method") else compute, args, kwargs,
                      writes=writes, fresh=fresh)
        if kind in ("getitem", "setitem"):
            instr.fn = kind
        self.instrs.append(instr)
        if writes is not None:
            instr.out = writes if kind == "call" and result is not None else None
            return writes if result is not None else None
        if isinstance(result, (tuple, list)):  # np.split: a Value per piece
            whole = instr.out = Value(result, instr)
            return type(result)(self.record("getitem", None, (whole, i), {}, operator.getitem)
                                for i in range(len(result)))
        value = instr.out = Value(result, instr)
        return value


def _examples(tree):
    """The same structure with each Value replaced by its traced array."""
    if isinstance(tree, Value):
        return tree.example
    if isinstance(tree, tuple):
        return tuple(_examples(t) for t in tree)
    if isinstance(tree, list):
        return [_examples(t) for t in tree]
    if isinstance(tree, dict):
        return {k: _examples(v) for k, v in tree.items()}
    if isinstance(tree, slice):
        return slice(_examples(tree.start), _examples(tree.stop), _examples(tree.step))
    return tree


def _walk(tree):
    if isinstance(tree, (tuple, list)):
        for t in tree:
            yield from _walk(t)
    elif isinstance(tree, dict):
        for t in tree.values():
            yield from _walk(t)
    elif isinstance(tree, slice):
        yield from _walk((tree.start, tree.stop, tree.step))
    else:
        yield tree


class _Stack(threading.local):
    """The recordings in effect, per thread (two threads may trace two steps at once)."""
    def __init__(self) -> None:
        self.recordings: list[Recording] = []


_stack = _Stack()


def current() -> Recording:
    if not _stack.recordings:
        raise NotSymbolic("a symbolic array was used outside a recording")
    return _stack.recordings[-1]


class recording:  # noqa: N801 - used as `with recording(r):`
    """Make `r` the recording Values append to (nested recordings stack)."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec

    def __enter__(self) -> Recording:
        _stack.recordings.append(self.rec)
        return self.rec

    def __exit__(self, *exc: Any) -> None:
        _stack.recordings.pop()
