"""The base of every built-in op, and the shape error they share."""
import functools

import numpy as np

from ..function import Function


class Op(Function):
    """A built-in op: a public `Function` whose backward returns new arrays, `g` or views of
    `g` (never a saved array), so the engine may accumulate into them in place.

    `saved_from` (one line beside the op) says what each array in `saved_arrays` is, so that
    `grad(create_graph=True)` can run the same backward on graph-connected Tensors: an input's
    index, `OUTPUT`, or `PIECEWISE_CONSTANT` (derived, but with derivative 0 almost everywhere:
    positions, masks).  An op that saves an array of any other kind (BatchNorm's x̂) does not
    declare it, and a second derivative through it is refused by name."""
    __slots__ = ()
    fresh_gradients = True


class SavedRole:
    """What a saved array is, for `Op.saved_from` (besides an input's index)."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return self.what


OUTPUT = SavedRole("OUTPUT")  # the array forward returned
PIECEWISE_CONSTANT = SavedRole("PIECEWISE_CONSTANT")  # derived; derivative 0 almost everywhere


def primitive(fn=None, *, out_like_first=False, op=None, plain=None):
    """Mark a numpy helper of the ops (`sigmoid`, `zero_where`) as one step of a compiled
    program: tl.compile records and prints a call to it, not the numpy calls inside it, so the
    generated code reads `A1 = sigmoid(Z1)`.  Eagerly it is just `fn`.  out_like_first: `fn`
    takes `out=` and may write its result into its first argument's array (elementwise, of
    that shape and dtype), as a ufunc may; a compiled step then reuses a dying operand.

    Its form on graph-connected Tensors (grad(create_graph=True)): `op`, an op class whose
    output `fn` computes (sigmoid is Sigmoid's forward), or `plain`, the same function written
    with plain numpy calls (zero_where is np.where(drop, 0, g)).  Without either, a second
    derivative through a backward that calls `fn` is refused."""
    if fn is None:
        return functools.partial(primitive, out_like_first=out_like_first, op=op, plain=plain)
    fn.out_like_first, fn.same_as_op, fn.plain = out_like_first, op, plain

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


ARITHMETIC = (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
              ("pow", np.power), ("matmul", np.matmul))
COMPARISONS = (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
               ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal))


def operators_as_ufuncs(cls, arithmetic=ARITHMETIC, comparisons=COMPARISONS, unary=()):
    """Give `cls` Python's operators as calls of numpy's ufuncs (`a + b` is `np.add(a, b)`,
    `a += b` is `np.add(a, b, out=(a,))`), so that its `__array_ufunc__` sees every one: how
    tl.compile's symbolic arrays and the Tensor-valued arrays of higher-order gradients run
    the ops' numpy code."""
    for name, ufunc in arithmetic:
        setattr(cls, f"__{name}__", lambda self, other, u=ufunc: u(self, other))
        setattr(cls, f"__r{name}__", lambda self, other, u=ufunc: u(other, self))
        setattr(cls, f"__i{name}__", lambda self, other, u=ufunc: u(self, other, out=(self,)))
    for name, ufunc in comparisons:
        setattr(cls, f"__{name}__", lambda self, other, u=ufunc: u(self, other))
    for name, ufunc in unary:
        setattr(cls, f"__{name}__", lambda self, u=ufunc: u(self))
