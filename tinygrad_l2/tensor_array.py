"""TensorArray: an op's own backward, run on Tensors, builds a graph of its gradient.

Every op's backward is written once, against numpy.  `grad(create_graph=True)` runs that same
code with `TensorArray`s in place of its arrays: a TensorArray holds a Tensor and takes part in
numpy's dispatch protocols (`__array_ufunc__`, `__array_function__`) and Python's operators,
so that `g * out`, `np.exp(out)`, `g.sum(axis=0)` or `grad[index] = g` each call an existing
differentiable Tensor op.  This module is only that mapping, numpy spelling -> Tensor op (a
namespace); it holds no derivative of its own.  (The compiler plays the same trick with
symbolic arrays: `compiler/symbolic.py`.)

Values computed by numpy functions whose derivative is 0 almost everywhere (comparisons,
`isnan`, `sign`, ...) are plain constant arrays, as in every autodiff.  Anything else the
mapping does not know raises `CreateGraphError` naming the op and the numpy feature: a
second derivative is refused rather than silently cut.
"""
from __future__ import annotations

import operator
import threading
from typing import Any

import numpy as np

from . import creation
from .function import TensorBase
from .ops.base import operators_as_ufuncs
from .tensor import Tensor


class CreateGraphError(RuntimeError):
    """grad(create_graph=True) met a backward it cannot run on Tensors (it names the op)."""


class _Running(threading.local):
    op_name = "an op"  # whose backward runs on Tensors now, for error messages


running = _Running()


def refuse(what: str) -> CreateGraphError:
    return CreateGraphError(f"grad(create_graph=True): {running.op_name}'s backward {what}; "
                            f"no second derivative through {running.op_name} yet")


class TensorArray:
    """A Tensor dressed as a numpy array for an op's backward.  In-place operators rebind
    `tensor` (functional: the old Tensor is untouched), so `grad *= 2` reads as numpy."""

    __slots__ = ("tensor",)
    __array_priority__ = 10_000  # numpy defers to our operators: ndarray * TensorArray

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    shape = property(lambda self: self.tensor.shape)
    dtype = property(lambda self: self.tensor.dtype)
    ndim = property(lambda self: self.tensor.ndim)
    size = property(lambda self: self.tensor._data.size)
    T = property(lambda self: TensorArray(self.tensor.T))

    def __len__(self) -> int:
        return len(self.tensor)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: Any) -> TensorArray:
        return TensorArray(self.tensor[_constant_index(index)])

    def __setitem__(self, index: Any, value: Any) -> None:
        positions = _positions(self.shape, index)
        if np.unique(positions).size != positions.size:
            raise refuse("assigns to repeated positions (the last write would win)")
        keep = np.ones(self.shape, dtype=bool)
        keep.flat[positions.ravel()] = False
        self.tensor = _kept(self.tensor, keep) + _scatter(_tensor_of(value), positions, self.shape)

    def reshape(self, *shape: Any, **kwargs: Any) -> TensorArray:
        return _with_shape(np.reshape, self, shape[0] if len(shape) == 1 else shape, **kwargs)

    def transpose(self, *axes: Any) -> TensorArray:
        axes = tuple(axes[0]) if len(axes) == 1 and np.ndim(axes[0]) == 1 else axes
        return TensorArray(self.tensor.transpose(*(int(a) for a in axes)))

    def sum(self, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> TensorArray:
        return _reduced(Tensor.sum, self, axis, keepdims, kwargs)

    def mean(self, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> TensorArray:
        return _reduced(Tensor.mean, self, axis, keepdims, kwargs)

    def astype(self, dtype: Any, copy: bool = True) -> TensorArray:
        return TensorArray(self.tensor.astype(dtype))

    def copy(self) -> TensorArray:
        return TensorArray(self.tensor)

    def __neg__(self) -> Any:
        return np.negative(self)

    def __abs__(self) -> Any:
        return np.absolute(self)

    __hash__ = object.__hash__  # == compares elementwise (below); identity stays the hash

    # ---- numpy's protocols -----------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.pop("out", None)
        if method == "at" and ufunc is np.add and isinstance(inputs[0], TensorArray) and not kwargs:
            target, index, value = inputs
            positions = _positions(target.shape, index)
            target.tensor = target.tensor + _scatter(_tensor_of(value), positions, target.shape)
            return None
        if method != "__call__" or kwargs:
            raise refuse(f"calls numpy's {ufunc.__name__}.{method} with {sorted(kwargs)}"
                         if kwargs else f"calls numpy's {ufunc.__name__}.{method}")
        if ufunc in PIECEWISE_CONSTANT:  # derivative 0 almost everywhere: a constant
            return ufunc(*[_data_of(x) for x in inputs])
        spelling = UFUNCS.get(ufunc)
        if spelling is None:
            raise refuse(f"calls numpy's {ufunc.__name__}, which has no Tensor form here")
        result = TensorArray(spelling(*[_operand(x) for x in inputs]))
        if out is None:
            return result
        target = out[0] if isinstance(out, tuple) else out
        if not isinstance(target, TensorArray):
            raise refuse(f"writes a gradient into a plain array ({ufunc.__name__}(..., out=))")
        target.tensor = result.tensor
        return target

    def __array_function__(self, func, types, args, kwargs):
        spelling = FUNCTIONS.get(func)
        if spelling is None:
            raise refuse(f"calls numpy's {func.__name__}, which has no Tensor form here")
        return spelling(*args, **kwargs)

    def record_primitive(self, fn, args, kwargs):
        """ops.primitive on Tensors: the op it computes, or its plain-numpy spelling."""
        if fn.same_as_op is not None:
            return TensorArray(fn.same_as_op.apply(*[_operand(a) for a in args], **kwargs))
        if fn.plain is not None:
            return fn.plain(*args, **kwargs)
        raise refuse(f"calls {fn.__name__}, a helper with no Tensor form (declare op= or plain= "
                     f"in its @primitive)")

    # ---- what would read values into Python or plain numpy: refused ----------------------------
    def __array__(self, *_, **__):
        raise refuse("converts a gradient to a plain numpy array (np.asarray), cutting the graph")

    def _concrete(self, *_):
        raise refuse("reads a gradient's value into Python (bool, float, item)")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = item = tolist = _concrete

    def __getattr__(self, name):
        if hasattr(np.ndarray, name) and not name.startswith("__"):  # (numpy probes dunders)
            raise refuse(f"uses ndarray.{name}, which has no Tensor form here")
        raise AttributeError(name)


operators_as_ufuncs(TensorArray)


# ---- the namespace: numpy spelling -> Tensor ops -------------------------------------------------

def _power(x, exponent):
    if isinstance(exponent, (Tensor, TensorArray)) or np.ndim(exponent) != 0:
        raise refuse("raises to an array power, which has no Tensor form here")
    return x ** exponent


UFUNCS = {np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul,
          np.true_divide: operator.truediv, np.matmul: operator.matmul, np.negative: operator.neg,
          np.positive: operator.pos, np.power: _power, np.square: lambda x: x ** 2,
          np.exp: Tensor.exp, np.log: Tensor.log, np.sqrt: Tensor.sqrt, np.tanh: Tensor.tanh,
          np.absolute: Tensor.abs, np.reciprocal: lambda x: 1 / x,
          np.maximum: creation.maximum, np.minimum: creation.minimum}

# numpy functions whose derivative is 0 almost everywhere: on Tensors they give constants
PIECEWISE_CONSTANT = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal,
                      np.not_equal, np.isnan, np.isinf, np.isfinite, np.sign, np.signbit,
                      np.logical_not, np.logical_and, np.logical_or, np.logical_xor, np.floor,
                      np.ceil, np.rint, np.trunc}


def _like(fill):
    def like(a, dtype=None, shape=None, **kwargs):
        if kwargs:
            raise refuse(f"calls a numpy *_like with {sorted(kwargs)}")
        array = np.full(a.shape if shape is None else shape, fill, dtype=dtype or a.dtype)
        return TensorArray(Tensor._make(array, None))  # a constant, written into by setitem
    return like


def _where(condition, a, b):
    if isinstance(condition, TensorArray):
        raise refuse("chooses with np.where on a condition that carries a gradient")
    return TensorArray(creation.where(np.asarray(condition), _operand(a), _operand(b)))


def _broadcast_to(x, shape, **kwargs):
    x = _tensor_of(x)
    if tuple(shape) == x.shape:
        return TensorArray(x)
    return TensorArray(x + Tensor._make(np.zeros(shape, dtype=x.dtype), None))  # Add unbroadcasts


def _with_shape(func, x, *args, **kwargs):
    """A shape-only numpy function (expand_dims, squeeze, reshape): the Reshape it amounts to."""
    shape = func(np.broadcast_to(np.zeros((), dtype=x.dtype), x.shape), *args, **kwargs).shape
    return TensorArray(_tensor_of(x).reshape(shape))


def _moveaxis(x, source, destination):
    """The Transpose np.moveaxis amounts to (numpy's own construction of the order)."""
    source = [int(a) % x.ndim for a in np.atleast_1d(source)]
    destination = [int(a) % x.ndim for a in np.atleast_1d(destination)]
    order = [a for a in range(x.ndim) if a not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return TensorArray(_tensor_of(x).transpose(*order))


def _swapaxes(x, axis1, axis2):
    order = list(range(x.ndim))
    order[axis1], order[axis2] = order[axis2], order[axis1]
    return TensorArray(_tensor_of(x).transpose(*order))


def _split(x, indices, axis=0):
    bounds = [0, *np.atleast_1d(indices).tolist(), x.shape[axis]]
    before = (slice(None),) * (axis % x.ndim)
    return [x[before + (slice(lo, hi),)] for lo, hi in zip(bounds[:-1], bounds[1:])]


FUNCTIONS = {np.where: _where, np.zeros_like: _like(0), np.ones_like: _like(1),
             np.broadcast_to: _broadcast_to, np.moveaxis: _moveaxis, np.swapaxes: _swapaxes,
             np.split: _split, np.expand_dims: lambda x, axis: _with_shape(np.expand_dims, x, axis),
             np.squeeze: lambda x, axis=None: _with_shape(np.squeeze, x, axis),
             np.reshape: lambda x, shape: x.reshape(shape),
             np.transpose: lambda x, axes=None: x.transpose(*(() if axes is None else (axes,))),
             np.sum: lambda x, axis=None, keepdims=False: x.sum(axis, keepdims),
             np.mean: lambda x, axis=None, keepdims=False: x.mean(axis, keepdims)}


# ---- operands, indices, scatter ----------------------------------------------------------------

def _tensor_of(x: Any) -> Any:
    """A TensorArray's Tensor; any other array a constant Tensor of its own dtype."""
    if isinstance(x, TensorArray):
        return x.tensor
    if isinstance(x, TensorBase):
        return x
    return Tensor._make(np.asarray(x), None)


def _operand(x: Any) -> Any:
    """An operand for a Tensor op: a Tensor, or a Python/numpy scalar left as a scalar."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    if isinstance(x, np.generic) and x.dtype.kind in "fiu":
        return x
    return _tensor_of(x)


def _data_of(x: Any) -> Any:
    return x.tensor._data if isinstance(x, TensorArray) else x


def _constant_index(index: Any) -> Any:
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, (TensorArray, TensorBase)) for p in parts):
        raise refuse("indexes with an array that carries a gradient")
    return index


def _reduced(method, x, axis, keepdims, kwargs):
    if kwargs:
        raise refuse(f"reduces with {sorted(kwargs)}, which has no Tensor form here")
    return TensorArray(method(x.tensor, axis=axis, keepdims=keepdims))


def _positions(shape, index):
    """For each element `x[index]` selects, its flat position in x (numpy's indexing, run on
    the positions themselves)."""
    return np.arange(int(np.prod(shape)), dtype=np.intp).reshape(shape)[_constant_index(index)]


def _kept(tensor, keep):
    """tensor with the positions not in `keep` zeroed (skipped for a constant all-zero one)."""
    if not tensor.requires_grad and not tensor._data.any():
        return tensor
    return tensor * Tensor._make(keep.astype(tensor.dtype), None)


def _scatter(value, positions, shape):
    """An array of `shape`, zero but for `value` added at `positions` (numpy's x[index] += v,
    repeated positions summed): the adjoint of indexing, as a gather (each position once) or
    a product with a 0/1 matrix (repeats), both existing differentiable ops."""
    count, size = positions.size, int(np.prod(shape))
    value = _broadcast_to(value, positions.shape).tensor.reshape(count)
    if np.unique(positions).size == count:
        slot = np.full(size, count, dtype=np.intp)  # slot `count` is the zero appended below
        slot[positions.ravel()] = np.arange(count)
        padded = creation.cat([value, Tensor._make(np.zeros(1, dtype=value.dtype), None)])
        return padded[slot].reshape(shape)
    placement = np.zeros((size, count), dtype=value.dtype)
    placement[positions.ravel(), np.arange(count)] = 1
    return (Tensor._make(placement, None) @ value).reshape(shape)
