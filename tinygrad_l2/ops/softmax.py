"""Softmax and log-softmax along an axis."""
import numpy as np

from .base import OUTPUT, Op


# ---- softmax family --------------------------------------------------------------------------

class Softmax(Op):
    """z = eˣ / Σ eˣ along `axis` (x - max first, so no overflow);
    dz/dx·g = z ⊙ (g - Σ g⊙z)."""
    __slots__ = ("axis",)
    saved_from = (OUTPUT,)

    def forward(self, x):
        _check_axis("softmax", self.axis, x.shape)
        if x.size == 0:
            out = x.copy()
        else:
            e = np.exp(x - x.max(axis=self.axis, keepdims=True))
            out = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return out * (g - (g * out).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Op):
    """z = x - max - log Σ e^(x - max) along `axis`;  dz/dx·g = g - softmax(x)·Σ g."""
    __slots__ = ("axis",)
    saved_from = (OUTPUT,)

    def forward(self, x):
        _check_axis("log_softmax", self.axis, x.shape)
        if x.size == 0:
            out = x.copy()
        else:
            shifted = x - x.max(axis=self.axis, keepdims=True)
            out = shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return g - np.exp(out) * g.sum(axis=self.axis, keepdims=True)


def _check_axis(op, axis, shape):
    if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise np.exceptions.AxisError(f"{op}: axis {axis!r} is out of range for a tensor of shape {shape}")
