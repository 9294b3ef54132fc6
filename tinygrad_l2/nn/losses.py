"""Losses, each with its formula and reduction; labels are validated, never silently broadcast."""
from __future__ import annotations

import numpy as np

from ..ops import Op, PickLabels, row_indices, sigmoid
from ..tensor import Operand, Tensor
from .module import Module


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


def quadratic_cost(a: Tensor, y: Operand, batch_axis: int = 0) -> Tensor:
    """Nielsen's quadratic cost C = (1/m) Σₓ ½‖a(x) − y(x)‖²  (m = a.shape[batch_axis]).

    Built from ordinary ops: Sub -> Square -> Sum -> Mul(×1/2m).
    """
    y = _target(y, _labels("quadratic_cost", y, a))
    m = a.shape[batch_axis] if a.ndim else 1
    return (0.5 / m) * ((a - y) ** 2.0).sum()


REDUCTIONS = ("mean", "sum", "none")


class _Reduced(Op):
    """A loss computed elementwise, then reduced as PyTorch's `reduction` says: "mean" (÷N, N =
    number of elements), "sum" or "none" (the elementwise losses)."""
    __slots__ = ("reduction",)

    def reduce(self, losses):
        if self.reduction == "none":
            return losses
        return losses.sum() if self.reduction == "sum" else losses.mean()

    def scale(self, g, n):
        """d(reduced)/d(elementwise loss) times g: g/N, g, or g itself elementwise."""
        return g / n if self.reduction == "mean" else g


class BinaryCrossEntropy(_Reduced):
    """J = −(1/N) Σ [y·log a + (1−y)·log(1−a)], N = number of elements (the course's m for a
    (1, m) output).  Logs are clamped at −100 and the backward's denominator a(1−a) at 1e-12,
    as in PyTorch's BCELoss, so a = 0 or 1 gives a finite loss and gradient:
        dJ/da = (a − y) / (a(1−a)) / N,     dJ/dy = (log(1−a) − log a) / N
    """
    __slots__ = ()

    def forward(self, a, y):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
            log_a = np.maximum(np.log(a), -100)
            log_1ma = np.maximum(np.log1p(-a), -100)
        self.save_for_backward(a, y, log_a, log_1ma)
        return self.reduce(-(y * log_a + (1 - y) * log_1ma))

    def backward(self, g):
        a, y, log_a, log_1ma = self.saved_arrays
        denominator = np.maximum(a * (1 - a), np.asarray(1e-12, dtype=a.dtype))
        grad_a = self.scale(g * (a - y) / denominator, a.size)
        grad_y = self.scale(g * (log_1ma - log_a), a.size) if self.needs_input_grad[1] else None
        return grad_a, grad_y


class BinaryCrossEntropyWithLogits(_Reduced):
    """J = (1/N) Σ [max(z, 0) − z·y + log(1 + e^(−|z|))]  (stable for any z; = BCE(σ(z), y)).
        dJ/dz = (σ(z) − y) / N,     dJ/dy = −z / N
    One op with its analytic backward: built from relu and abs, the kinks at z = 0 would each
    take the subgradient 0 and the gradient there would be −y/N instead of (½ − y)/N."""
    __slots__ = ()
    saved_from = (0, 1)

    def forward(self, z, y):
        self.save_for_backward(z, y)
        return self.reduce(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

    def backward(self, g):
        z, y = self.saved_arrays
        grad_z = self.scale(g * (sigmoid(z) - y), z.size)
        grad_y = self.scale(g * -z, z.size) if self.needs_input_grad[1] else None
        return grad_z, grad_y


def _reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def binary_cross_entropy(a: Tensor, y: Operand, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on probabilities `a` in [0, 1] (deeplearning.ai's cost).  A target
    Tensor of `a`'s dtype is used as it is (so its name shows in the graph)."""
    target = _labels("binary_cross_entropy", y, a)
    if not np.all((a.data >= 0) & (a.data <= 1)):  # written so that NaN fails it (PyTorch)
        raise ValueError("binary_cross_entropy: predictions must lie in [0, 1], not NaN (use "
                         "binary_cross_entropy_with_logits for logits)")
    if not np.all((target >= 0) & (target <= 1)):
        raise ValueError("binary_cross_entropy: targets must lie in [0, 1], not NaN")
    return BinaryCrossEntropy.apply(a, _target(y, target),
                                    reduction=_reduction("binary_cross_entropy", reduction))


def _target(given, array):
    """The targets as a Tensor: the one given when it is already right (its name shows in the
    graph), a differentiable cast of it when it requires grad (it gets its gradient, as in
    PyTorch), else a constant."""
    if isinstance(given, Tensor) and (given.data is array or given.requires_grad):
        return given.astype(array.dtype)
    source = given.data if isinstance(given, Tensor) else given
    if isinstance(source, np.ndarray):  # converted from it (a step tl.compile traces converts
        return Tensor(source, dtype=array.dtype)  # each call's targets, not the traced ones)
    return Tensor(array)


def binary_cross_entropy_with_logits(z: Tensor, y: Operand, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on logits z, stable for any z:
    mean(max(z, 0) − z·y + log(1 + e^(−|z|))), one op whose gradient is (σ(z) − y)/N."""
    target = _labels("binary_cross_entropy_with_logits", y, z)
    if np.any((target < 0) | (target > 1)):
        raise ValueError("binary_cross_entropy_with_logits: targets must lie in [0, 1]")
    return BinaryCrossEntropyWithLogits.apply(
        z, _target(y, target), reduction=_reduction("binary_cross_entropy_with_logits", reduction))


def softmax_cross_entropy(logits: Tensor, labels: Operand, reduction: str = "mean") -> Tensor:
    """−(1/m) Σᵢ log softmax(zᵢ)[yᵢ] for logits (m, C) and integer labels (m,), via
    log_softmax (stable at any logit scale).  PyTorch's F.cross_entropy."""
    reduction = _reduction("softmax_cross_entropy", reduction)
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
    picks = PickLabels.apply(logits.log_softmax(axis=1), index=(row_indices(m), labels),
                                 op="softmax_cross_entropy")  # checks the labels' range
    losses = -picks
    return _reduce(losses, reduction)


def mse_loss(prediction: Tensor, target: Operand, reduction: str = "mean") -> Tensor:
    """PyTorch's F.mse_loss: mean of (prediction − target)² over ALL elements.  Nielsen's
    quadratic_cost is ½·Σ(a − y)²/m with m the batch size, so for an (m, k) output
    quadratic_cost = (k/2)·mse_loss."""
    reduction = _reduction("mse_loss", reduction)
    target = _target(target, _labels("mse_loss", target, prediction))
    return _reduce((prediction - target) ** 2.0, reduction)


def _reduce(losses, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


class _Loss(Module):
    """A loss as a module (PyTorch's nn.*Loss): `criterion(prediction, target)`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(type(self).__name__, reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """mean((prediction − target)²); see `mse_loss`."""

    def forward(self, prediction: Tensor, target: Operand) -> Tensor:
        return mse_loss(prediction, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits (m, C) and integer labels (m,)."""

    def forward(self, logits: Tensor, labels: Operand) -> Tensor:
        return softmax_cross_entropy(logits, labels, self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities in [0, 1]."""

    def forward(self, probabilities: Tensor, target: Operand) -> Tensor:
        return binary_cross_entropy(probabilities, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (one op: its gradient is (σ(z) − y)/N at every z)."""

    def forward(self, logits: Tensor, target: Operand) -> Tensor:
        return binary_cross_entropy_with_logits(logits, target, self.reduction)
