"""From user data to arrays, and the argument checks the Tensor methods share: a clear error
that names the op and what it got, instead of numpy's."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from .function import TensorBase

DEFAULT_DTYPE = np.dtype(np.float32)


def _describe(value):
    """A short description of what the user gave, for error messages."""
    if isinstance(value, np.ndarray):
        return f"numpy array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:120]


def to_array(data: Any, dtype: npt.DTypeLike | None = None, what: str = "Tensor",
             infer: bool = False) -> np.ndarray:
    """Turn user data into a float or integer ndarray, or raise a clear error.

    A float32/float64 array keeps its dtype; ints, bools-free lists and scalars become float32
    unless `dtype` says otherwise (torch.Tensor's rule).  With `infer` (torch.tensor's rule)
    every numpy array keeps its dtype, Python integers become int64 and floats float32.  Strings, objects, complex numbers, booleans and ragged
    lists are refused: they have no gradient a float engine could give them.
    """
    if isinstance(data, TensorBase):
        data = data._data
    if isinstance(data, (str, bytes)) or isinstance(data, (bool, np.bool_)):
        raise TypeError(f"{what}: expected a number, a nested list of numbers or a numpy array; "
                        f"got {_describe(data)}")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as err:  # numpy 2 raises for ragged nesting
        raise ValueError(f"{what}: data must be a rectangular nested list or an array "
                         f"(got {_describe(data)}): {err}") from None
    kind = array.dtype.kind
    if kind not in "fiu":
        got = {"b": "booleans", "c": "complex numbers", "O": "objects or ragged lists",
               "U": "strings", "S": "bytes"}.get(kind, f"dtype {array.dtype}")
        raise TypeError(f"{what}: expected float or integer numbers, got {got} "
                        f"({_describe(data)})")
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiu":
            raise TypeError(f"{what}: dtype must be a float or integer dtype, got {dtype}")
        return array.astype(dtype, copy=False)
    if isinstance(data, np.ndarray | np.generic) and (kind == "f" or infer):
        return array
    return array.astype(np.int64 if infer and kind in "iu" else DEFAULT_DTYPE)


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # PyTorch's categories: bool < integer < float


def result_type(a: TensorBase, b: TensorBase | int | float, true_division: bool = False) -> np.dtype:
    """PyTorch's type promotion for a binary op between tensor `a` and `b` (a tensor, or a
    Python scalar: numpy scalars and 0-d arrays are passed as Python scalars, "weak" as in
    PyTorch).  The higher category wins (bool < integer < float: int64 · float32 is float32);
    within a category a tensor with dimensions beats a 0-d tensor, which beats a scalar, so a
    hyper-parameter never upcasts a float32 model; equals promote as numpy does.  An integer
    result of true division is float32 (PyTorch's default dtype)."""
    dtype = a._data.dtype
    if isinstance(b, TensorBase):
        other, (ca, cb) = b._data.dtype, (_CATEGORY[dtype.kind], _CATEGORY[b._data.dtype.kind])
        if ca != cb:
            dtype = dtype if ca > cb else other
        elif (a._data.ndim == 0) != (b._data.ndim == 0):
            dtype = other if a._data.ndim == 0 else dtype
        else:
            dtype = np.promote_types(dtype, other)
    elif isinstance(b, float) and dtype.kind != "f":
        dtype = DEFAULT_DTYPE
    elif dtype.kind == "b":  # a mask times a Python int
        dtype = np.dtype(np.int64)
    return DEFAULT_DTYPE if true_division and dtype.kind != "f" else dtype


def _axes(op, axis, keepdims, dim, keepdim):
    """numpy's axis/keepdims or PyTorch's dim/keepdim (not both)."""
    return _one_of(op, axis, dim), bool(_one_of(op, keepdims or None, keepdim) or False)


def _one_of(op, axis, dim, default=None):
    if dim is not None and axis is not None and axis != default:
        raise TypeError(f"{op}: give axis or dim, not both (axis={axis!r}, dim={dim!r})")
    return dim if dim is not None else axis


def _axis(op, axis, ndim):
    """`axis` in 0..ndim-1, or numpy's AxisError: an IndexError (PyTorch's "Dimension out of
    range") that is also a ValueError (numpy's)."""
    if not isinstance(axis, (int, np.integer)) or not -max(ndim, 1) <= axis < max(ndim, 1):
        raise np.exceptions.AxisError(f"{op}: dim {axis!r} is out of range for {ndim} dimensions")
    return int(axis) % max(ndim, 1)


def _exponent(exponent, base=None):
    if isinstance(exponent, TensorBase) or (isinstance(exponent, np.ndarray) and exponent.ndim):
        raise TypeError(f"pow: the exponent must be a Python or numpy scalar, got "
                        f"{_describe(exponent)}; for a tensor exponent write (b * a.log()).exp()")
    if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
        if not (isinstance(exponent, np.ndarray) and exponent.dtype.kind in "fiu"):
            raise TypeError(f"pow: the exponent must be a real number, got {_describe(exponent)}")
    if not isinstance(exponent, int) or not -2 ** 31 < exponent < 2 ** 31:  # (an int as itself: a
        exponent = float(exponent)  # constant of the code stays one object, for tl.compile)
    elif exponent < 0 and base is not None and base.kind in "iu":
        raise ValueError(f"pow: an integer tensor (dtype {base}) to a negative integer power ({exponent}) "
                         f"is not allowed, as in PyTorch; make the tensor float first")
    if not np.isfinite(exponent):
        raise ValueError(f"pow: the exponent must be finite, got {exponent}")
    return exponent
