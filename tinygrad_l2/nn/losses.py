"""Losses, each with its formula and reduction; labels are validated, never silently broadcast."""
import numpy as np

from ..ops import Op, sigmoid
from ..tensor import Tensor


def _labels(op, y, like, shape=None):
    """The targets as an array of `like`'s dtype and shape (or `shape`), or a clear error."""
    array = y.data if isinstance(y, Tensor) else np.asarray(y)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{op}: targets must be numbers, got dtype {array.dtype}")
    expected = like.shape if shape is None else shape
    if array.shape != expected:
        raise ValueError(f"{op}: targets have shape {array.shape}, predictions {like.shape}; "
                         f"expected targets of shape {expected}")
    return array.astype(like.dtype, copy=False)


def quadratic_cost(a, y, batch_axis=0):
    """Nielsen's quadratic cost C = (1/m) Σₓ ½‖a(x) − y(x)‖²  (m = a.shape[batch_axis]).

    Built from ordinary ops: Sub -> Square -> Sum -> Mul(×1/2m).
    """
    y = _labels("quadratic_cost", y, a)
    m = a.shape[batch_axis] if a.ndim else 1
    return (0.5 / m) * ((a - y) ** 2).sum()


class BinaryCrossEntropy(Op):
    """J = −(1/N) Σ [y·log a + (1−y)·log(1−a)], N = number of elements (the course's m for a
    (1, m) output).  Logs are clamped at −100 and the backward's denominator a(1−a) at 1e-12,
    as in PyTorch's BCELoss, so a = 0 or 1 gives a finite loss and gradient:
        dJ/da = (a − y) / (a(1−a)) / N,     dJ/dy = (log(1−a) − log a) / N
    """

    def forward(self, a, y):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
            log_a = np.maximum(np.log(a), -100)
            log_1ma = np.maximum(np.log1p(-a), -100)
        self.save_for_backward(a, y, log_a, log_1ma)
        return -(y * log_a + (1 - y) * log_1ma).mean()

    def backward(self, g):
        a, y, log_a, log_1ma = self.saved_arrays
        n = a.size
        denominator = np.maximum(a * (1 - a), np.asarray(1e-12, dtype=a.dtype))
        grad_a = g * (a - y) / denominator / n
        grad_y = g * (log_1ma - log_a) / n if self.needs_input_grad[1] else None
        return grad_a, grad_y


class BinaryCrossEntropyWithLogits(Op):
    """J = (1/N) Σ [max(z, 0) − z·y + log(1 + e^(−|z|))]  (stable for any z; = BCE(σ(z), y)).
        dJ/dz = (σ(z) − y) / N,     dJ/dy = −z / N
    One op with its analytic backward: built from relu and abs, the kinks at z = 0 would each
    take the subgradient 0 and the gradient there would be −y/N instead of (½ − y)/N."""

    def forward(self, z, y):
        self.save_for_backward(z, y)
        return (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).mean()

    def backward(self, g):
        z, y = self.saved_arrays
        grad_z = g * (sigmoid(z) - y) / z.size
        grad_y = g * -z / z.size if self.needs_input_grad[1] else None
        return grad_z, grad_y


def binary_cross_entropy(a, y):
    """Binary cross-entropy on probabilities `a` in [0, 1] (deeplearning.ai's cost).  A target
    Tensor of `a`'s dtype is used as it is (so its name shows in the graph)."""
    y_tensor = y
    y = _labels("binary_cross_entropy", y, a)
    if np.any((a.data < 0) | (a.data > 1)):
        raise ValueError("binary_cross_entropy: predictions must lie in [0, 1] (use "
                         "binary_cross_entropy_with_logits for logits)")
    if np.any((y < 0) | (y > 1)):
        raise ValueError("binary_cross_entropy: targets must lie in [0, 1]")
    return BinaryCrossEntropy.apply(a, _target(y_tensor, y))


def _target(given, array):
    """The targets as a Tensor: the one given when it is already right (its name shows in the
    graph, and a target that requires grad gets its gradient), else a constant."""
    return given if isinstance(given, Tensor) and given.data is array else Tensor(array)


def binary_cross_entropy_with_logits(z, y):
    """Binary cross-entropy on logits z, stable for any z:
    mean(max(z, 0) − z·y + log(1 + e^(−|z|))), one op whose gradient is (σ(z) − y)/N."""
    y_tensor = y
    y = _labels("binary_cross_entropy_with_logits", y, z)
    if np.any((y < 0) | (y > 1)):
        raise ValueError("binary_cross_entropy_with_logits: targets must lie in [0, 1]")
    return BinaryCrossEntropyWithLogits.apply(z, _target(y_tensor, y))


def softmax_cross_entropy(logits, labels):
    """−(1/m) Σᵢ log softmax(zᵢ)[yᵢ] for logits (m, C) and integer labels (m,), via
    log_softmax (stable at any logit scale)."""
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must have shape (batch, classes), got "
                         f"{logits.shape}")
    labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    m, classes = logits.shape
    if labels.dtype.kind not in "iu":
        raise TypeError(f"softmax_cross_entropy: labels must be integer class indices, got "
                        f"dtype {labels.dtype}")
    if labels.shape != (m,):
        raise ValueError(f"softmax_cross_entropy: labels have shape {labels.shape}, expected "
                         f"({m},) for logits of shape {logits.shape}")
    if m and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"softmax_cross_entropy: labels must be in [0, {classes - 1}], got "
                         f"values from {labels.min()} to {labels.max()}")
    return -logits.log_softmax(axis=1)[np.arange(m), labels].mean()
