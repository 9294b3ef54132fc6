"""The base of every built-in op, and the shape error they share."""
import functools

import numpy as np

from ..function import Function


class Op(Function):
    """A built-in op: a public `Function` whose backward returns new arrays, `g` or views of
    `g` (never a saved array), so the engine may accumulate into them in place."""
    __slots__ = ()
    fresh_gradients = True


def primitive(fn=None, *, out_like_first=False):
    """Mark a numpy helper of the ops (`sigmoid`, `zero_where`) as one step of a compiled
    program: tl.compile records and prints a call to it, not the numpy calls inside it, so the
    generated code reads `A1 = sigmoid(Z1)`.  Eagerly it is just `fn`.  out_like_first: `fn`
    takes `out=` and may write its result into its first argument's array (elementwise, of
    that shape and dtype), as a ufunc may; a compiled step then reuses a dying operand."""
    if fn is None:
        return functools.partial(primitive, out_like_first=out_like_first)
    fn.out_like_first = out_like_first

    @functools.wraps(fn)
    def call(*args, **kwargs):
        for arg in args:
            record = getattr(arg, "record_primitive", None)
            if record is not None:  # a compiled step's symbolic array
                return record(fn, args, kwargs)
        return fn(*args, **kwargs)
    fn.is_primitive = True  # what a compiled program calls by name
    return call


def require(ok, error, *arrays):
    """Raise `error(*arrays)` unless `ok`, a check of an op's input values (labels in range).
    On a compiled step's symbolic arrays the check is recorded instead, and runs every call."""
    record = getattr(ok, "record_check", None)
    if record is not None:
        record(error, *arrays)
    elif not ok:
        raise error(*arrays)


def _shape_error(op, *shapes, expected):
    shown = " and ".join(str(tuple(np.shape(s))) for s in shapes)
    return ValueError(f"{op}: shapes {shown}: {expected}")
