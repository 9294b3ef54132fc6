"""Making tensors, PyTorch's names: tensor, zeros, ones, full, randn, rand, arange, eye,
zeros_like, ones_like; and the functions of several tensors: maximum, minimum, where, cat,
stack.  Float32 by default; the random ones draw from the generator `tl.manual_seed` seeds."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from . import context, ops
from .function import TensorBase
from .random import default_generator
from .arrays import to_array
from .tensor import DEFAULT_DTYPE, Operand, Tensor, promoted


def _shape(shape, op):
    """Varargs or one tuple/list -> a tuple of ints >= 0."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"{op}: sizes must be integers >= 0, got {shape!r}")
    return tuple(int(n) for n in shape)


def _made(array, dtype, requires_grad, name=None):
    return Tensor(array, dtype=DEFAULT_DTYPE if dtype is None else dtype,
                  requires_grad=requires_grad, name=name)


def _flat(shape):
    """The sizes as given: varargs or one tuple/list (the objects, to tell ones read from a tensor)."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _constant(tensor, *numbers):
    """A tensor whose values follow from the call's arguments alone (zeros of a shape, an
    identity): a compiled step takes it as a constant, as it takes a number (an RNN's zero
    state, one-hot targets eye(k)[y]).  Not one that requires grad (a new leaf each call), nor
    one made from `numbers` read from a tensor (`full(shape, loss.item())`)."""
    if not tensor.requires_grad and all(_plain_number(n) for n in numbers):
        context.number_array(tensor._data)
    return tensor


def _plain_number(value):
    """A Python number (or None) that was not read from a tensor: not a tensor, an array or a
    number computed with numpy from one (`full(shape, t)` with t a 0-d tensor)."""
    return (value is None or type(value) in (int, float, bool)) and not context.read_from_tensor(value)


def tensor(data: npt.ArrayLike | Tensor, requires_grad: bool = False, dtype: npt.DTypeLike | None = None,
           name: str | None = None) -> Tensor:
    """A new tensor holding a copy of `data` (torch.tensor: never shares memory).  Its dtype is
    torch.tensor's: `dtype` if given, else a numpy array's or a Tensor's own, else int64 for
    Python integers (class labels) and float32 for Python floats."""
    data = data._data if isinstance(data, TensorBase) else data
    array = np.array(data, copy=True) if isinstance(data, np.ndarray | np.generic) else data
    array = to_array(array, dtype, what="tensor", infer=True)
    return Tensor(array, requires_grad=requires_grad, name=name, dtype=array.dtype)


def zeros(*shape: int | tuple[int, ...] | list[int], dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return _constant(_made(np.zeros(_shape(shape, "zeros")), dtype, requires_grad), *_flat(shape))


def ones(*shape: int | tuple[int, ...] | list[int], dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return _constant(_made(np.ones(_shape(shape, "ones")), dtype, requires_grad), *_flat(shape))


def full(shape: int | tuple[int, ...] | list[int], fill_value: float, dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    given = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    return _constant(_made(np.full(_shape(given, "full"), fill_value, dtype=np.float64), dtype, requires_grad),
                     fill_value, *given)


def randn(*shape: int | tuple[int, ...] | list[int], dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _drawn(_shape(shape, "randn"), True, dtype, requires_grad)


def rand(*shape: int | tuple[int, ...] | list[int], dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1)."""
    return _drawn(_shape(shape, "rand"), False, dtype, requires_grad)


class RandomDraw(ops.Op):
    """z ~ N(0, 1) (`normal`) or U[0, 1), of `shape`, drawn in float64 from tl's default
    generator and cast to `like`'s dtype (`like`: a tensor whose values are not read).  An op,
    so that a compiled step draws new samples each call from the same stream as eager (noise,
    a VAE's ε, a dropout mask `rand(...) < keep`); no gradient."""
    __slots__ = ("shape", "normal")

    def forward(self, like):
        draw = default_generator().standard_normal if self.normal else default_generator().random
        return draw(self.shape).astype(like.dtype, copy=False)

    def backward(self, g):
        return None


def _drawn(shape, normal, dtype, requires_grad):
    """Samples drawn in float64 and cast: by the RandomDraw op (a compiled step draws new ones
    each call), or as a new leaf when they require grad."""
    if requires_grad:
        draw = default_generator().standard_normal if normal else default_generator().random
        return _made(draw(shape), dtype, requires_grad)
    like = Tensor._make(context.number_array(np.zeros((), DEFAULT_DTYPE if dtype is None else dtype)), None)
    return RandomDraw.apply(like, shape=shape, normal=normal)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: npt.DTypeLike | None = None,
           requires_grad: bool = False) -> Tensor:
    """start, start+step, ... < stop; int64 when every argument is an integer (PyTorch)."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    integral = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
    values = np.arange(start, stop, step)
    return _constant(Tensor(values, dtype=dtype or (np.int64 if integral else DEFAULT_DTYPE),
                            requires_grad=requires_grad), start, stop, step)


def eye(n: int, m: int | None = None, dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return _constant(_made(np.eye(n, m), dtype, requires_grad), n, m)


def zeros_like(t: Tensor | np.ndarray, dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return _constant(Tensor(np.zeros(np.shape(getattr(t, "_data", t))), dtype=dtype or t.dtype,
                            requires_grad=requires_grad))


def ones_like(t: Tensor | np.ndarray, dtype: npt.DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return _constant(Tensor(np.ones(np.shape(getattr(t, "_data", t))), dtype=dtype or t.dtype,
                            requires_grad=requires_grad))


# ---- functions of several tensors ------------------------------------------------------------

def _pair(a, b, op):
    """Both operands as Tensors of PyTorch's result type (see `Tensor.promoted`)."""
    if not isinstance(a, TensorBase):
        if not isinstance(b, TensorBase):
            raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and "
                            f"{type(b).__name__}")
        return promoted(b, a, op, scalars=False, reflected=True)
    return promoted(a, b, op, scalars=False)


def maximum(a: Operand, b: Operand) -> Tensor:
    """Elementwise max; at ties each input gets half the gradient (torch.maximum)."""
    return ops.Maximum.apply(*_pair(a, b, "maximum"))


def minimum(a: Operand, b: Operand) -> Tensor:
    """Elementwise min; at ties each input gets half the gradient (torch.minimum)."""
    return ops.Minimum.apply(*_pair(a, b, "minimum"))


def where(condition: npt.ArrayLike | Tensor, a: Operand, b: Operand) -> Tensor:
    """a where condition else b (broadcasting); the gradient goes to the chosen input."""
    condition = np.asarray(getattr(condition, "_data", condition))
    if condition.dtype != bool:
        raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
    a, b = _pair(a, b, "where")
    return ops.Where.apply(a, b, condition=condition)


def cat(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Tensors joined along an existing axis (torch.cat)."""
    return ops.Concatenate.apply(*_tensors(tensors, "cat"), axis=axis if dim is None else dim)


def stack(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Tensors stacked along a new axis (torch.stack)."""
    return ops.Stack.apply(*_tensors(tensors, "stack"), axis=axis if dim is None else dim)


def _tensors(tensors, op):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    return [t if isinstance(t, TensorBase) else Tensor(t) for t in tensors]
