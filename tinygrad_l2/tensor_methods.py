"""The Tensor's reductions, shape methods and casts: each one op from `ops` (or a composition
of Tensor math), in PyTorch's spellings with numpy's axis/keepdims too."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from . import ops
from .arrays import _axes, _axis, _one_of

if TYPE_CHECKING:  # for annotations only
    from typing import Any

    from typing_extensions import Self


class TensorMethods:
    """Mixed into Tensor: methods written with the Tensor's own math and ops."""
    __slots__ = ()

    def __getstate__(self) -> dict:
        """Pickling and deepcopy keep the values, the gradient, requires_grad and the name,
        not the place in a graph (as PyTorch: the copy is a leaf)."""
        return {"_data": self._data, "_grad": self._grad, "_requires_grad": self._requires_grad,
                "name": self.name}

    def __setstate__(self, state: dict) -> None:
        for key, value in {**state, "_ctx": None, "_leaf": None}.items():  # (slots of TensorBase)
            setattr(self, key, value)

    if TYPE_CHECKING:  # what the methods use of the Tensor they are mixed into
        _data: np.ndarray
        _grad: np.ndarray | None
        _requires_grad: bool
        name: str | None

        @property
        def shape(self) -> tuple[int, ...]: ...
        @property
        def ndim(self) -> int: ...
        @property
        def size(self) -> int: ...
        @property
        def dtype(self) -> np.dtype: ...
        @property
        def requires_grad(self) -> bool: ...
        @requires_grad.setter
        def requires_grad(self, value: bool) -> None: ...

        @classmethod
        def _make(cls, data: np.ndarray, ctx: Any) -> Self: ...
        def __sub__(self, other: Any) -> Self: ...
        def __mul__(self, other: Any) -> Self: ...
        def __pow__(self, exponent: float) -> Self: ...
        def sqrt(self) -> Self: ...

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *, dim: int | tuple[int, ...] | None = None,
            keepdim: bool | None = None) -> Self:
        axis, keepdims = _axes("sum", axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *, dim: int | tuple[int, ...] | None = None,
             keepdim: bool | None = None) -> Self:
        axis, keepdims = _axes("mean", axis, keepdims, dim, keepdim)
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *, dim: int | tuple[int, ...] | None = None,
            keepdim: bool | None = None) -> Self:
        """Maximum values (numpy semantics: values only, no indices; see argmax)."""
        axis, keepdims = _axes("max", axis, keepdims, dim, keepdim)
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *, dim: int | tuple[int, ...] | None = None,
            keepdim: bool | None = None) -> Self:
        """Minimum values (numpy semantics: values only, no indices; see argmin)."""
        axis, keepdims = _axes("min", axis, keepdims, dim, keepdim)
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> Self:
        """Indices of the maxima (int64, no gradient); over the flattened tensor by default."""
        return self._arg(np.argmax, "argmax", axis, keepdims, dim, keepdim)

    def argmin(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> Self:
        """Indices of the minima (int64, no gradient); over the flattened tensor by default."""
        return self._arg(np.argmin, "argmin", axis, keepdims, dim, keepdim)

    def _arg(self, pick, op, axis, keepdims, dim, keepdim):
        axis, keepdims = _axes(op, axis, keepdims, dim, keepdim)
        if self._data.size == 0:
            raise ValueError(f"{op}: cannot take the {op} of an empty tensor of shape {self.shape}")
        if axis is not None and not isinstance(axis, (int, np.integer)):  # (numpy: a TypeError)
            raise np.exceptions.AxisError(f"{op}: axis {axis!r} is out of range for a tensor of "
                                          f"shape {self.shape}")
        return ops.ArgReduce.apply(self, pick=pick, axis=axis, keepdims=keepdims)

    def var(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, correction: int = 1, *,
            dim: int | tuple[int, ...] | None = None, keepdim: bool | None = None) -> Self:
        """Σ(x − mean)² / (N − correction) over `axis` (PyTorch's default: Bessel's correction;
        N ≤ correction gives nan, as PyTorch)."""
        axis, keepdims = _axes("var", axis, keepdims, dim, keepdim)
        centered = self - self.mean(axis=axis, keepdims=True)
        count = self._data.size if axis is None else int(np.prod(
            [self.shape[a] for a in np.atleast_1d(np.asarray(axis)) % max(self.ndim, 1)]))
        scale = 1.0 / (count - correction) if count > correction else float("nan")
        return (centered * centered).sum(axis=axis, keepdims=keepdims) * scale

    def std(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, correction: int = 1, *,
            dim: int | tuple[int, ...] | None = None, keepdim: bool | None = None) -> Self:
        """√var (same arguments)."""
        return self.var(axis, keepdims, correction, dim=dim, keepdim=keepdim).sqrt()

    def clamp(self, min: float | None = None, max: float | None = None) -> Self:
        """Values limited to [min, max]; gradient 1 inside, boundaries included (PyTorch)."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return ops.Clamp.apply(self, low=min, high=max)

    clip = clamp

    def pow(self, exponent: float) -> Self:
        return self ** exponent

    def astype(self, dtype: npt.DTypeLike) -> Self:
        """A differentiable cast (the gradient is cast back)."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiu":
            raise TypeError(f"astype: dtype must be a float or integer dtype, got {dtype}")
        return self if dtype == self.dtype else ops.Cast.apply(self, dtype=dtype)

    def float(self) -> Self:
        return self.astype(np.float32)

    def double(self) -> Self:
        return self.astype(np.float64)

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        self.requires_grad = requires_grad
        return self

    def reshape(self, *shape: int | tuple[int, ...] | list[int]) -> Self:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes: int | tuple[int, ...] | list[int]) -> Self:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Self:
        return self.transpose()

    def permute(self, *axes: int | tuple[int, ...] | list[int]) -> Self:
        return self.transpose(*axes)

    def view(self, *shape: int | tuple[int, ...] | list[int]) -> Self:
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Self:
        """Axes start_dim..end_dim merged into one (a 0-d tensor becomes shape (1,))."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = (_axis("flatten", d, self.ndim) for d in (start_dim, end_dim))
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for a tensor of shape {self.shape}")
        shape = self.shape
        return self.reshape(shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:])

    def squeeze(self, axis: int | None = None, *, dim: int | None = None) -> Self:
        """Size-1 axes removed (all, or the given one if it has size 1: PyTorch's rule)."""
        axis = _one_of("squeeze", axis, dim)
        if axis is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axis = _axis("squeeze", axis, self.ndim)
        if self.ndim == 0 or self.shape[axis] != 1:
            return self
        return self.reshape(self.shape[:axis] + self.shape[axis + 1:])

    def unsqueeze(self, axis: int | None = None, *, dim: int | None = None) -> Self:
        """A size-1 axis inserted at `axis` (-ndim-1 .. ndim, as PyTorch)."""
        axis = _one_of("unsqueeze", axis, dim)
        axis = _axis("unsqueeze", axis, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Self:
        return ops.Softmax.apply(self, axis=_one_of("softmax", axis, dim, default=-1))

    def log_softmax(self, axis: int = -1, *, dim: int | None = None) -> Self:
        return ops.LogSoftmax.apply(self, axis=_one_of("log_softmax", axis, dim, default=-1))
