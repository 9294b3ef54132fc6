"""tl.nn.functional: PyTorch's functional names and signatures, on this engine's ops.

The textbook losses stay beside them in `tl.nn`: `quadratic_cost(a, y)` (Nielsen) is
½·Σ(a − y)²/m over a batch of m, while `mse_loss` is the mean over all elements: for an (m, k)
output, quadratic_cost = (k/2)·mse_loss.  `softmax_cross_entropy` is `cross_entropy`.
"""
from __future__ import annotations

from ..tensor import Tensor
from .conv import conv2d
from .layers import dropout
from .normalization import batch_norm, layer_norm
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, mse_loss,
                     softmax_cross_entropy as cross_entropy)

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm",
           "layer_norm", "dropout", "relu", "sigmoid", "tanh", "softmax",
           "log_softmax", "mse_loss", "cross_entropy", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e⁻ˣ)."""
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    """tanh x."""
    return x.tanh()


def softmax(x: Tensor, dim: int) -> Tensor:
    """e^x / Σ e^x along `dim`."""
    return x.softmax(axis=dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """x − log Σ e^x along `dim`."""
    return x.log_softmax(axis=dim)
