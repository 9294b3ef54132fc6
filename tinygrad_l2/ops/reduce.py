"""Reductions: sum, mean, max, min."""
import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from .base import Op


# ---- reductions ------------------------------------------------------------------------------

class _Reduction(Op):
    """Shared by sum/mean/max/min: validates `axis` and expands a gradient back to the input."""
    __slots__ = ("axis", "keepdims", "axes", "in_shape")

    def forward(self, x):
        try:
            self.axes = (None if self.axis is None else normalize_axis_tuple(self.axis, x.ndim))
        except (ValueError, TypeError, np.exceptions.AxisError):
            raise np.exceptions.AxisError(f"{type(self).__name__.lower()}: axis {self.axis!r} is out of range "
                             f"for a tensor of shape {x.shape} (valid axes: -{x.ndim} .. "
                             f"{x.ndim - 1})") from None
        self.in_shape = x.shape
        return self.reduce(x)

    def expand(self, g):
        """g in the reduced shape -> a broadcast view in the input shape."""
        if not self.keepdims and self.axes is not None:
            g = np.expand_dims(g, self.axes)
        return np.broadcast_to(g, self.in_shape)

    def count(self):
        """How many input elements each output element reduces."""
        shape = self.in_shape
        return int(np.prod(shape if self.axes is None else [shape[a] for a in self.axes]))

    def label(self):
        name = type(self).__name__
        return name if self.axis is None else f"{name}(axis={self.axis})"


class Sum(_Reduction):
    """z = Σ x over `axis`;  dz/dx = 1 (the gradient is copied back along the summed axes)."""
    __slots__ = ()

    def reduce(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        return self.expand(g)


class Mean(_Reduction):
    """z = (1/N) Σ x over `axis`;  dz/dx = 1/N.  N is applied in at least float32: as a
    float16 constant, N > 65,504 would be inf and every gradient 0."""
    __slots__ = ()

    def reduce(self, x):
        with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing is NaN
            return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        count = self.count()
        if g.dtype.itemsize < 4:
            return self.expand((g.astype(np.float32) / count).astype(g.dtype))
        return self.expand(g / count)


class Max(_Reduction):
    """z = max x over `axis` (values only);  the gradient goes to the maximal elements, split
    evenly on ties (PyTorch's amax)."""
    __slots__ = ()

    def reduce(self, x):
        extreme = self.pick(x)
        self.save_for_backward(x, extreme)
        return extreme if self.keepdims else np.squeeze(extreme, self.axes)

    def pick(self, x):
        _check_nonempty(type(self).__name__.lower(), x, self.axes)
        return x.max(axis=self.axes, keepdims=True)

    def backward(self, g):
        x, extreme = self.saved_arrays
        mask = x == extreme
        share = mask / mask.sum(axis=self.axes, keepdims=True)
        return self.expand(g) * share.astype(g.dtype, copy=False)


class Min(Max):
    """z = min x over `axis` (values only);  the gradient goes to the minimal elements, split
    evenly on ties (PyTorch's amin)."""
    __slots__ = ()

    def pick(self, x):
        _check_nonempty("min", x, self.axes)
        return x.min(axis=self.axes, keepdims=True)


def _check_nonempty(op, x, axes):
    """PyTorch's rule: reducing over an axis of length 0 has no identity for max/min."""
    reduced = range(x.ndim) if axes is None else axes
    if x.size == 0 and (x.ndim == 0 or any(x.shape[a] == 0 for a in reduced) or axes is None):
        raise ValueError(f"{op}: cannot reduce over an empty axis of a tensor of shape {x.shape} "
                         f"(max and min have no identity); reduce over a non-empty axis")
