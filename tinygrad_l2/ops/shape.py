"""Shape ops: reshape, transpose, indexing, concatenate, stack."""
import functools

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from .base import Op, require


# ---- shape ops -------------------------------------------------------------------------------

class Reshape(Op):
    """z = x viewed with another shape;  the gradient is reshaped back."""
    __slots__ = ("shape", "in_shape")

    def forward(self, x):
        shape = tuple(self.shape)
        if (not all(isinstance(n, int | np.integer) and n >= -1 for n in shape)
                or shape.count(-1) > 1):
            raise ValueError(f"reshape: invalid shape {shape} for a tensor of shape {x.shape}: "
                             f"each size must be an integer >= 0, with at most one -1 (inferred)")
        try:
            out = x.reshape(shape)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {shape}") from None
        self.in_shape = x.shape
        return out

    def backward(self, g):
        return g.reshape(self.in_shape)

    def label(self):
        return f"Reshape{tuple(self.shape)}"


class Transpose(Op):
    """z = x with axes permuted;  the gradient is permuted back by the inverse permutation."""
    __slots__ = ("axes", "perm")

    def forward(self, x):
        if self.axes is None:  # the common case (.T): reverse the axes
            self.perm = None
            return x.T
        axes = tuple(self.axes)
        try:
            perm = normalize_axis_tuple(axes, x.ndim, allow_duplicate=True)
        except (ValueError, TypeError, np.exceptions.AxisError):
            perm = None
        if perm is None or sorted(perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                             f"of a tensor of shape {x.shape}")
        self.perm = perm
        return x.transpose(perm)

    def backward(self, g):
        return g.T if self.perm is None else g.transpose(np.argsort(self.perm))


class Index(Op):
    """z = x[index] (basic slices and integer arrays);  the gradient is scattered back, with
    repeated indices accumulated (np.add.at)."""
    __slots__ = ("index", "in_shape")
    saved_from = ()  # index: a constant argument

    def forward(self, x):
        try:
            out = x[self.index]
        except IndexError as err:
            raise IndexError(f"index: {err} (tensor of shape {x.shape})") from None
        self.in_shape = x.shape
        return out

    def backward(self, g):
        grad = np.zeros_like(g, shape=self.in_shape)
        if _is_basic_index(self.index) or one_per_row(self.index, self.in_shape):
            grad[self.index] = g  # each element selected at most once: placed, not summed
        else:
            np.add.at(grad, self.index, g)
        return grad


class PickLabels(Index):
    """z = x[arange(m), labels]: each row's entry at its label, the labels checked to be class
    indices in [0, C) (negative ones would wrap around) — the cross-entropy's pick."""
    __slots__ = ("op",)

    def forward(self, x):
        labels, classes = self.index[1], x.shape[1]
        # as unsigned integers a negative label wraps to a huge one: one max checks both ends
        require(labels.size == 0 or labels.astype(np.uint64, copy=False).max() < classes,
                _label_error(self.op, classes), labels)
        return super().forward(x)

    def label(self):
        return "Index"


def _label_error(op, classes):
    def error(labels):
        return ValueError(f"{op}: labels must be in [0, {classes - 1}], got values from "
                          f"{labels.min()} to {labels.max()}")
    return error


@functools.lru_cache(maxsize=64)
def row_indices(m):
    """np.arange(m), one shared read-only array per m: x[row_indices(m), labels] picks one entry
    per row, and tl.compile can tell this shape-determined index from one computed from data."""
    rows = np.arange(m)
    rows.flags.writeable = False
    return rows


def one_per_row(index, shape):
    """x[row_indices(m), labels]: one element of each row (the cross-entropy's pick), labels
    being one per row (a column of labels, shape (m, 1), picks m elements of every row)."""
    return (isinstance(index, tuple) and len(index) == 2 and shape and len(shape) == 2
            and isinstance(index[0], np.ndarray) and index[0] is row_indices(shape[0])
            and getattr(index[1], "ndim", 2) <= 1)


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


class Concatenate(Op):
    """z = the inputs joined along `axis`;  each input's gradient is its slice of g."""
    __slots__ = ("axis", "sizes")

    def forward(self, *arrays):
        try:
            out = np.concatenate(arrays, axis=self.axis)
        except (ValueError, np.exceptions.AxisError) as err:
            raise ValueError(f"cat: cannot join shapes {[a.shape for a in arrays]} along axis "
                             f"{self.axis}: {err}") from None
        self.sizes = [a.shape[self.axis] for a in arrays]
        return out

    def backward(self, g):
        return tuple(np.split(g, np.cumsum(self.sizes)[:-1], axis=self.axis))


class Stack(Op):
    """z = the inputs stacked along a new `axis`;  each input's gradient is its index of g."""
    __slots__ = ("axis",)

    def forward(self, *arrays):
        try:
            return np.stack(arrays, axis=self.axis)
        except (ValueError, np.exceptions.AxisError) as err:
            raise ValueError(f"stack: cannot stack shapes {[a.shape for a in arrays]} along "
                             f"axis {self.axis}: {err}") from None

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))
