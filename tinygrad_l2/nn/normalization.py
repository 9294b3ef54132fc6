"""Normalization layers: BatchNorm1d, BatchNorm2d and LayerNorm, PyTorch's semantics.

LayerNorm, and BatchNorm in eval mode, are composed of existing ops (mean, subtraction,
square, sqrt, division, scale and shift), so their gradient comes from the graph, as micrograd
would build it.  BatchNorm in training mode is one op, `BatchNormalize`, with the closed-form
backward beside its forward: composed, it was some twenty small ops per layer, most of a
ConvNet step's time; tests check it against the composed graph and finite differences.

    μ = mean(x),  σ² = mean((x − μ)²)   over the batch (and positions) per channel for
                                        BatchNorm, over the last dims per example for LayerNorm
    x̂ = (x − μ) / √(σ² + ε)
    y = γ ⊙ x̂ + β                       (γ "weight", β "bias": learned when affine)

BatchNorm in training mode normalizes with the batch's statistics and updates the running
ones (no gradient flows through that update), as torch.nn.BatchNorm*d:

    running_mean ← (1 − m)·running_mean + m·μ
    running_var  ← (1 − m)·running_var  + m·σ²·n/(n − c)   (n values per channel)

with m = momentum, or m = 1/num_batches_tracked when momentum is None (a cumulative average),
and c = running_var_correction: 1 (torch's default) stores the unbiased variance, 0 the biased
σ² the layer normalized with, as Keras' BatchNormalization does (its moving_variance update;
Keras' momentum μ is m = 1 − μ here: moving ← μ·moving + (1 − μ)·batch).  c changes only the
running statistics, never the training-mode output or its gradients.
In eval mode it normalizes with the running statistics (constants).  With
track_running_stats=False there are none: the batch's statistics are used in both modes.

L2 and γ, β: like Keras' BatchNormalization (gamma_regularizer=None, beta_regularizer=None),
γ and β carry no regularizer unless given one; PyTorch's `weight_decay` would decay them
unless they sit in a group with weight_decay=0 (`tl.optim.param_groups` builds those groups).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from .. import context
from ..ops import Op
from ..tensor import Tensor
from .module import Module


def _float_dtype(owner, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{owner}: dtype must be a floating-point type, got {dtype}")
    return dtype


def _normalize(x, axes, eps):
    """(x̂, μ, σ²) with the biased σ² over `axes`, as graph ops."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    return centered / (var + eps).sqrt(), mean, var


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, running_var_correction: int = 1) -> Tensor:
    """PyTorch's F.batch_norm over axis 1 of an (N, C, ...) input.  Training: the batch's
    statistics, and the running ones (if given) updated with `momentum` and the variance's
    `running_var_correction` (1: unbiased, torch's; 0: biased, Keras') (their arrays are
    replaced, not written in place: a graph that read the old ones keeps them).  Otherwise the
    running statistics, which must be given."""
    shape = (1, -1) + (1,) * (x.ndim - 2)  # γ, β and the statistics broadcast per channel
    if training:
        count = x.size // x.shape[1]
        if count <= running_var_correction or count < 1:  # n/(n − c) needs n > c
            raise ValueError(f"batch_norm: expected more than {running_var_correction} "
                             f"value{'' if running_var_correction == 1 else 's'} per channel "
                             f"when training, got input of shape {x.shape}")
        out = BatchNormalize.apply(x, weight, bias, eps=eps)
        if running_mean is not None and running_var is not None:
            node = out._ctx  # the op's statistics (computed again when it recorded no node)
            if node is None:
                node = BatchNormalize()
                node.eps = eps
                node.forward(x.data)
            _update(running_mean, node.mean, momentum)
            _update(running_var, node.var * (count / (count - running_var_correction)), momentum)
            context.record_unreplayable("batch_norm's running statistics update")
        return out
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when not training")
    x_hat = (x - running_mean.reshape(shape)) / (running_var.reshape(shape) + eps).sqrt()
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    return x_hat + bias.reshape(shape) if bias is not None else x_hat


class BatchNormalize(Op):
    """Batch normalization with the batch's own statistics, per channel (axis 1), over the
    M = N·H·W values of each channel:

        μ = Σx/M,  σ² = Σ(x − μ)²/M,  x̂ = (x − μ)/√(σ² + ε),  y = γ·x̂ + β

        dβ = Σ g,    dγ = Σ g·x̂,    dx = γ/√(σ² + ε) · (g − Σg/M − x̂·Σ(g·x̂)/M)

    The two terms subtracted from g are the paths through μ and σ² (each value moves the
    statistics every value is normalized with).  γ and β may be None (affine=False).  The sums
    per channel are einsums over an (N, C, H·W) view: one pass, no temporary.
    """
    __slots__ = ("eps", "mean", "var")
    eps: float
    mean: np.ndarray  # the batch's statistics, (C,) each: the running ones are updated with them
    var: np.ndarray

    def forward(self, x, weight=None, bias=None):
        channels = x.shape[1] if x.ndim >= 2 else None
        for name, p in (("weight", weight), ("bias", bias)):
            if p is not None and p.shape != (channels,):
                raise ValueError(f"batch_norm: {name} of shape {p.shape} does not fit an input of "
                                 f"shape {x.shape}: expected ({channels},), one per channel")
        count = x.size // channels
        self.mean = _channel_sums(x) / count
        x_hat = x - _per_channel(self.mean, x.ndim)
        self.var = _channel_sums(x_hat, x_hat) / count
        inv_std = 1 / np.sqrt(self.var + self.eps)
        x_hat *= _per_channel(inv_std, x.ndim)
        self.save_for_backward(x_hat, inv_std, *([] if weight is None else [weight]))
        out = x_hat if weight is None else x_hat * _per_channel(weight, x.ndim)
        return out if bias is None else out + _per_channel(bias, x.ndim)

    def backward(self, g):
        x_hat, inv_std = self.saved_arrays[:2]
        need_x, need_weight, need_bias = self.needs_input_grad
        sum_g, sum_g_x_hat = _channel_sums(g), _channel_sums(g, x_hat)
        grad_x = None
        if need_x:
            count = g.size // g.shape[1]
            scale = inv_std if len(self.saved_arrays) == 2 else self.saved_arrays[2] * inv_std
            grad_x = g - _per_channel(sum_g / count, g.ndim)
            grad_x -= x_hat * _per_channel(sum_g_x_hat / count, g.ndim)
            grad_x *= _per_channel(scale, g.ndim)
        return grad_x, (sum_g_x_hat if need_weight else None), (sum_g if need_bias else None)

    def label(self):
        return "BatchNorm"


def _channel_sums(a, b=None):
    """Σ a (or Σ a·b) over every axis but 1: a (C,) array."""
    a = a.reshape(a.shape[0], a.shape[1], -1)
    if b is None:
        return np.einsum("ncs->c", a)
    return np.einsum("ncs,ncs->c", a, b.reshape(a.shape))


def _per_channel(values, ndim):
    """A (C,) array as (1, C, 1, …): broadcast along axis 1 of an ndim-dimensional input."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _update(running, batch, momentum):
    """running ← (1 − m)·running + m·batch, as a new array of the running statistic's dtype."""
    running.data = ((1 - momentum) * running.data + momentum * batch).astype(running.dtype)


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """PyTorch's F.layer_norm: normalize over the last len(normalized_shape) dims."""
    n = len(normalized_shape)
    if not isinstance(x, Tensor) or x.ndim < n or x.shape[x.ndim - n:] != tuple(normalized_shape):
        raise ValueError(f"layer_norm: expected an input whose last dims are "
                         f"{tuple(normalized_shape)}, got shape {getattr(x, 'shape', type(x).__name__)}")
    x_hat, _, _ = _normalize(x, tuple(range(x.ndim - n, x.ndim)), eps)
    if weight is not None:
        x_hat = x_hat * weight
    return x_hat + bias if bias is not None else x_hat


class _BatchNorm(Module):
    """The shared body of BatchNorm1d and BatchNorm2d (they differ in the input ranks)."""
    normalization = True
    ranks: tuple[int, ...]
    weight: Tensor | None
    bias: Tensor | None
    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 gamma_regularizer: Callable[[Tensor], Tensor] | None = None,
                 beta_regularizer: Callable[[Tensor], Tensor] | None = None,
                 dtype: npt.DTypeLike = np.float32, running_var_correction: int = 1) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if not (isinstance(eps, (int, float)) and eps >= 0):
            raise ValueError(f"{name}: eps must be a number >= 0, got {eps!r}")
        if momentum is not None and not (isinstance(momentum, (int, float)) and 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        if running_var_correction not in (0, 1) or isinstance(running_var_correction, bool):
            raise ValueError(f"{name}: running_var_correction must be 1 (unbiased running_var, "
                             f"torch) or 0 (biased, Keras), got {running_var_correction!r}")
        if not affine and (gamma_regularizer is not None or beta_regularizer is not None):
            raise ValueError(f"{name}: a gamma/beta regularizer was given but affine=False")
        dtype = _float_dtype(name, dtype)
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.running_var_correction = int(running_var_correction)
        self.weight = Tensor(np.ones(num_features, dtype), requires_grad=True) if affine else None
        self.bias = Tensor(np.zeros(num_features, dtype), requires_grad=True) if affine else None
        tracked = track_running_stats
        self.register_buffer("running_mean", np.zeros(num_features, dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(num_features, dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)
        self.regularizers = {"weight": gamma_regularizer, "bias": beta_regularizer}

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        tracked, factor = self.num_batches_tracked if self.training else None, 0.0
        if tracked is not None:  # momentum None: the cumulative average, 1/(batches seen)
            factor = 1.0 / (int(tracked.data) + 1) if self.momentum is None else self.momentum
        training = self.training or self.running_mean is None
        out = batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training,
                         factor, self.eps, self.running_var_correction)
        if tracked is not None:  # counted once the batch went through (an error counts nothing)
            tracked.data = tracked.data + 1
        return out

    def _check(self, x):
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
        if x.ndim not in self.ranks:
            expected = " or ".join(f"{r}D" for r in self.ranks)
            raise ValueError(f"{name}: expected {expected} input, got {x.ndim}D input of shape "
                             f"{x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: input of shape {x.shape} has {x.shape[1]} channels on "
                             f"axis 1, expected num_features={self.num_features}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}"
                + (", running_var_correction=0" if self.running_var_correction == 0 else ""))


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs, per channel C (torch.nn.BatchNorm1d)."""
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs, per channel C (torch.nn.BatchNorm2d)."""
    ranks = (4,)


class LayerNorm(Module):
    """Layer normalization over the last len(normalized_shape) dims of each example
    (torch.nn.LayerNorm): the same statistics in training and eval, no running state.
    gamma_regularizer / beta_regularizer: Keras' LayerNormalization names (None by default)."""
    normalization = True

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 gamma_regularizer: Callable[[Tensor], Tensor] | None = None,
                 beta_regularizer: Callable[[Tensor], Tensor] | None = None,
                 dtype: npt.DTypeLike = np.float32) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                and n >= 1 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a non-empty "
                             f"sequence of them, got {normalized_shape!r}")
        if not (isinstance(eps, (int, float)) and eps >= 0):
            raise ValueError(f"LayerNorm: eps must be a number >= 0, got {eps!r}")
        if (gamma_regularizer is not None and not elementwise_affine) or (
                beta_regularizer is not None and not (elementwise_affine and bias)):
            raise ValueError("LayerNorm: a gamma/beta regularizer was given for a parameter the "
                             "layer does not have (elementwise_affine=False or bias=False)")
        dtype = _float_dtype("LayerNorm", dtype)
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        affine = elementwise_affine
        self.weight = Tensor(np.ones(shape, dtype), requires_grad=True) if affine else None
        self.bias = Tensor(np.zeros(shape, dtype), requires_grad=True) if affine and bias else None
        self.regularizers = {"weight": gamma_regularizer, "bias": beta_regularizer}

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
