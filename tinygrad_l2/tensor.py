"""Tensor: a numpy array with reverse-mode autodiff — the math and the Python protocol.

What the engine needs of a tensor (array, gradient, graph link) is `function.TensorBase`;
this module adds the user-facing spellings (`a * b`, `x.sum()`, `float(t)`), each one op
from `ops` (reductions and shape methods in `tensor_methods.py`), and `backward()`.
"""
from __future__ import annotations

import numbers
import operator
from typing import Any, Iterator, Union

import numpy as np
import numpy.typing as npt

from . import context, engine, ops
from .arrays import DEFAULT_DTYPE, _axis, _describe, _exponent, result_type, to_array
from .function import TensorBase
from .tensor_methods import TensorMethods

Scalars = Union[float, int, np.ndarray, np.number]  # the other side of a reflected op
Operand = Union["Tensor", Scalars, list]  # what a binary op accepts


class Tensor(TensorMethods, TensorBase):
    """An n-dimensional array that records the ops applied to it, for reverse-mode autodiff.

    `Tensor(data, requires_grad=False, name=None, dtype=None)`; a numpy array is used as it
    is, not copied.  A tensor made by an op holds that op's node (`grad_fn`); a leaf has none.
    """

    __slots__ = ()
    # numpy defers to our reflected operators: `np_array * t` is a Tensor, not an object array.
    __array_ufunc__ = None

    def __init__(self, data: npt.ArrayLike | TensorBase, requires_grad: bool = False, name: str | None = None,
                 dtype: npt.DTypeLike | None = None) -> None:
        self._data = to_array(data, dtype)
        if context.state.recorder is not None:  # (a traced step converts it each call; a leaf it
            context.state.recorder.new_tensors[id(self)] = self  # makes is a new one each call)
            if isinstance(data, np.ndarray) and self._data.dtype != data.dtype:
                self._data = _converted(data, self._data.dtype)
        self._grad = None
        self._requires_grad = False
        self.name = name
        self._ctx = self._leaf = None
        self.requires_grad = requires_grad

    # ---- array-like attributes -------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        if context.state.recorder is not None:
            context.user_reads_array(self)  # (a write into it is watched while tl.compile traces)
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        if context.state.recorder is not None:
            context.record_user_access("the step assigns a tensor's .data (an update by hand)")
        keep_dtype = not (isinstance(value, np.ndarray) and value.dtype.kind == "f")
        value = to_array(value, dtype=self._data.dtype if keep_dtype else None, what="Tensor.data")
        if value.shape != self._data.shape or value.dtype != self._data.dtype:
            self._leaf = None  # graphs built from now on record the new shape and dtype
        self._data = value  # a graph that saved the old array keeps it: its backward stays right

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> Size:
        """PyTorch's `t.size()` (the shape) and `t.size(dim)` (one dimension); uncalled, the
        number of elements as numpy's `.size` (an int that can be called: see `Size`)."""
        return Size(self._data.shape)

    def numel(self) -> int:
        """The number of elements (PyTorch's numel, numpy's size)."""
        return self._data.size

    def dim(self) -> int:
        """The number of dimensions (PyTorch's dim, numpy's ndim)."""
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def numpy(self) -> np.ndarray:
        if context.state.recorder is not None:  # (watches parameters and arrays ops made)
            context.user_reads_array(self)
        return self._data

    def item(self) -> float | int | bool:  # (tl.compile recomputes a read each call)
        return context.read_number(self, context.traced_int(self._scalar()), Tensor.item)

    def _scalar(self):
        if self._data.size != 1:
            raise ValueError(f"item: only a tensor with one element can be converted to a "
                             f"Python scalar, this one has shape {self.shape}")
        return self._data.item()

    def tolist(self) -> Any:
        return context.read_number(self, context.traced_int(self._data.tolist()), Tensor.tolist)

    # ---- the Python protocol, as PyTorch ---------------------------------------------------
    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self._data.size} "
                               f"elements (shape {self.shape}) is ambiguous; use .any() or "
                               f".all() on .data")
        return context.read_number(self, bool(self._data.item()), bool)

    def __float__(self) -> float:
        return context.read_number(self, float(self._scalar()), float)

    def __int__(self) -> int:
        return context.read_number(self, int(self._scalar()), int)

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index (this one: dtype {self.dtype}, shape {self.shape})")
        return context.read_number(self, int(self._data.item()), operator.index)

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        """`np.asarray(t)` gives the numbers (not an object array of Tensors)."""
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        if context.state.recorder is not None:  # (watches parameters and arrays ops made)
            context.user_reads_array(self)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        extras = []
        if self.name is not None:
            extras.append(f"name={self.name!r}")
        if self._ctx is not None:
            extras.append(f"grad_fn={type(self._ctx).__name__}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        if self.dtype != DEFAULT_DTYPE:
            extras.append(f"dtype={self.dtype}")
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"


    # ---- autograd --------------------------------------------------------------------------
    def backward(self, grad: npt.ArrayLike | None = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` is the gradient of some scalar with respect to `self` (needed unless `self` is
        a scalar, where it defaults to 1).  `retain_graph=True` keeps the saved arrays so that
        backward can run through the same graph again.  `create_graph=True` is refused (`.grad`
        holds numpy arrays): `tl.grad(loss, params, create_graph=True)` returns Tensors.
        """
        if create_graph:
            raise RuntimeError("backward(create_graph=True): .grad holds numpy arrays (no graph); use tl.grad(loss, inputs, create_graph=True)")
        engine.backward(self, grad, retain_graph=retain_graph)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph."""
        out = Tensor._make(self._data, None)
        out.name = self.name
        return out

    # ---- ops (each one op from ops.py: the PyTorch-like spellings) ---------------------------
    # `_plain(self, other)` is the common case (a float tensor with a Python scalar or a tensor
    # of its own dtype), passed on as it is; anything else goes through PyTorch's promotion.
    def __add__(self, other: Operand) -> Tensor: return _add(self, other) if _plain(self, other) else _add(*promoted(self, other, "add"))
    def __radd__(self, other: Scalars) -> Tensor: return _add(self, other) if _plain(self, other) else _add(*promoted(self, other, "add"))
    def __sub__(self, other: Operand) -> Tensor: return _sub(self, other) if _plain(self, other) else _sub(*promoted(self, other, "sub"))
    def __rsub__(self, other: Scalars) -> Tensor: return _sub(*promoted(self, other, "sub", reflected=True))
    def __mul__(self, other: Operand) -> Tensor: return _mul(self, other) if _plain(self, other) else _mul(*promoted(self, other, "mul"))
    def __rmul__(self, other: Scalars) -> Tensor: return _mul(self, other) if _plain(self, other) else _mul(*promoted(self, other, "mul"))
    def __truediv__(self, other: Operand) -> Tensor: return _div(self, other) if _plain(self, other) else _div(*promoted(self, other, "div"))
    def __rtruediv__(self, other: Scalars) -> Tensor: return _div(*promoted(self, other, "div", reflected=True))
    def __matmul__(self, other: Operand) -> Tensor: return ops.MatMul.apply(self, other) if _same_float(self, other) else ops.MatMul.apply(*promoted(self, other, "matmul", scalars=False))
    def __rmatmul__(self, other: Scalars) -> Tensor: return ops.MatMul.apply(*promoted(self, other, "matmul", scalars=False, reflected=True))
    def __neg__(self) -> Tensor: return ops.Neg.apply(self)
    def __pos__(self) -> Tensor: return self

    def __pow__(self, exponent: float | int | np.number) -> Tensor:
        return ops.Pow.apply(self, exponent=_exponent(exponent, self._data.dtype))

    def __rpow__(self, base: object) -> Tensor:
        raise TypeError(f"pow: a tensor exponent is not supported (base {_describe(base)}); "
                        f"write (t * log(base)).exp()")

    def exp(self) -> Tensor: return ops.Exp.apply(self)
    def log(self) -> Tensor: return ops.Log.apply(self)
    def sqrt(self) -> Tensor: return ops.Sqrt.apply(self)
    def relu(self) -> Tensor: return ops.ReLU.apply(self)
    def sigmoid(self) -> Tensor: return ops.Sigmoid.apply(self)
    def tanh(self) -> Tensor: return ops.Tanh.apply(self)
    def abs(self) -> Tensor: return ops.Abs.apply(self)

    # ---- comparisons: elementwise, a bool Tensor outside the graph (usable as a mask) -------
    def _compare(self, other, test):
        if not isinstance(other, (TensorBase, numbers.Real, np.ndarray, np.generic, list, tuple)):
            return NotImplemented
        return ops.Compare.apply(self, other, test=test)

    def __lt__(self, other: Any) -> Tensor: return self._compare(other, np.less)
    def __le__(self, other: Any) -> Tensor: return self._compare(other, np.less_equal)
    def __gt__(self, other: Any) -> Tensor: return self._compare(other, np.greater)
    def __ge__(self, other: Any) -> Tensor: return self._compare(other, np.greater_equal)
    def __eq__(self, other: object) -> Tensor: return self._compare(other, np.equal)  # type: ignore[override]
    def __ne__(self, other: object) -> Tensor: return self._compare(other, np.not_equal)  # type: ignore[override]

    # `==` is elementwise (below); hashing stays by identity, so tensors remain dict keys.
    __hash__ = object.__hash__

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, tuple):
            index = tuple(i._data if isinstance(i, TensorBase) else i for i in index)
        elif isinstance(index, TensorBase):  # a Tensor of indices
            index = index._data
        return ops.Index.apply(self, index=index)


class Size(int):
    """A tensor's number of elements, callable as PyTorch's `size`: `t.size()` is the shape,
    `t.size(dim)` one dimension (negative counts from the end; out of range, IndexError).
    Both spellings stay unambiguous: called, it is always PyTorch's; uncalled, numpy's int."""

    shape: tuple[int, ...]

    def __new__(cls, shape: tuple[int, ...]) -> Size:
        size = super().__new__(cls, int(np.prod(shape, dtype=np.int64)))
        size.shape = shape
        return size

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.shape
        if not self.shape:
            raise np.exceptions.AxisError(f"size: dimension {dim} requested of a 0-d tensor, "
                                          f"which has no dimensions")
        return self.shape[_axis("size", dim, len(self.shape))]


_add, _sub, _mul, _div = ops.Add.apply, ops.Sub.apply, ops.Mul.apply, ops.Div.apply  # hot path


def _plain(a, b):
    """Nothing to promote: a float tensor with a Python scalar, or with a tensor of its dtype."""
    kind = type(b)
    return (kind is float or kind is int or (kind is Tensor and b._data.dtype is a._data.dtype)) \
        and a._data.dtype.kind == "f"


def _same_float(a, b):
    """Two float tensors of one dtype: nothing to promote (matmul's common case)."""
    return type(b) is Tensor and b._data.dtype is a._data.dtype and a._data.dtype.kind == "f"


def promoted(tensor: Tensor, other: Any, op: str, scalars: bool = True,
             reflected: bool = False) -> tuple[Any, Any]:
    """The two operands of binary op `op`, converted (`_operand`) and cast to PyTorch's result
    type (`arrays.result_type`: an int64 tensor times a float32 one is float32, a numpy float64
    scalar never upcasts a float32 tensor); in the op's order (`reflected`: other first).
    A tensor that requires grad is cast by a differentiable Cast (its gradient is cast back)."""
    other = _operand(other, tensor, op, scalars)
    dtype = result_type(tensor, other, true_division=op == "div")
    tensor = tensor.astype(dtype)
    if isinstance(other, Tensor):
        other = other.astype(dtype)
    return (other, tensor) if reflected else (tensor, other)


def _operand(value, like, op, scalars=True):
    """The other operand of a binary op: a Tensor, or a real Python scalar passed to the op as
    an argument (numpy 2, NEP 50: it takes the tensor's dtype, so it never upcasts a float32
    tensor and keeps full precision in a float64 one).  A numpy scalar or 0-d array is such a
    scalar too (PyTorch's "weak" zero-dim operands).  Arrays become constant Tensors of their
    own dtype, lists of `like`'s (or, for an integer `like`, of the numbers').  With
    `scalars=False` (matmul) a scalar becomes a 0-d constant, for the op's own error."""
    if isinstance(value, TensorBase):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype == like.dtype and scalars:
        return Tensor._make(value, None)  # same dtype: no promotion question, and a compiled
        # step reads this array each call (as a number, its traced value would be replayed)
    if isinstance(value, (np.generic, np.ndarray)) and value.ndim == 0 and value.dtype.kind in "fiu":
        if isinstance(value, np.ndarray):  # its value, taken now: a trace would keep it
            context.record_unreplayable(f"a 0-d {value.dtype} array used as a number by {op}")
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, np.generic)):
        if not isinstance(value, int):  # (an int read by a traced .item() is one: kept as is)
            value = float(value)  # a Fraction, say: a plain float
        return value if scalars else _constant(value, like)
    if isinstance(value, (np.ndarray, list, tuple)):  # errors name the op ("mul: ...")
        if isinstance(value, np.ndarray) or like.dtype.kind != "f":
            array = to_array(value, what=op, infer=True)
            return Tensor(array, dtype=array.dtype)
        return Tensor(to_array(value, like.dtype, what=op), dtype=like.dtype)
    raise TypeError(f"{op}: unsupported operand {_describe(value)}; expected a Tensor, a numpy "
                    f"array or a real Python scalar")


def _constant(value, like):
    """A Python scalar as a 0-d constant Tensor of `like`'s dtype (for matmul's error)."""
    return Tensor._make(context.number_array(np.asarray(value, dtype=like.dtype)), None)


def _converted(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`array` as `dtype` by the Cast op: a step tl.compile traces then casts each call's `y`."""
    return ops.Cast.apply(Tensor._make(array, None), dtype=dtype)._data
