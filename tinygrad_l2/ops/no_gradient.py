"""Ops with no gradient: comparisons and the indices of maxima and minima.  They are ops all
the same (a node is never recorded for a result that is not float), so that a compiled step,
which sees every op, computes a mask `h > 0` or an accuracy's argmax again each call."""
import numpy as np

from .base import Op


class Compare(Op):
    """z = test(a, b) elementwise (np.less, np.equal, ...): a bool mask."""
    __slots__ = ("test",)

    def forward(self, a, b):
        return self.test(a, b)

    def backward(self, g):
        return None, None

    def explain(self, err, arrays):
        a, b = arrays
        return ValueError(f"compare: shapes {np.shape(a)} and {np.shape(b)} are not broadcastable")


class ArgReduce(Op):
    """z = the indices of the maxima (`pick` np.argmax) or minima along `axis` (int64)."""
    __slots__ = ("pick", "axis", "keepdims")

    def forward(self, x):
        return self.pick(x, axis=self.axis, keepdims=self.keepdims).astype(np.int64, copy=False)

    def backward(self, g):
        return None

    def explain(self, err, arrays):
        op, (x,) = self.pick.__name__, arrays
        return np.exceptions.AxisError(f"{op}: axis {self.axis!r} is out of range for a tensor of "
                                       f"shape {x.shape}")
