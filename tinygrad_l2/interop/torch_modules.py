"""The torch side of a hand-off: modules torch.nn lacks (layout permutes, Keras' strided "same"
convolution) and a Sequential that carries the tl model's regularizers as an explicit penalty.
Imports torch: only `to_torch` imports this module."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F

from .layers import same_padding


class Permute(torch.nn.Module):
    """x.permute(*dims): the layout changes of a model converted from Keras."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class SamePaddedConv2d(torch.nn.Conv2d):
    """Keras' padding="same" for any stride: pad (possibly unevenly, the odd pixel at the end)
    from each input's size, then an unpadded convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = (same_padding(n, k, s) for n, k, s in
                                        zip(x.shape[2:], self.kernel_size, self.stride))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride)


class _BiasedRunningVar(torch.nn.modules.batchnorm._BatchNorm):
    """torch.nn.BatchNorm*d whose training step stores the biased batch variance in
    running_var (tl's running_var_correction=0, Keras' moving_variance update) where torch
    stores the unbiased one; the output, its gradients and running_mean are torch's own."""
    running_var_correction = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats):
            return super().forward(x)
        self._check_input_dim(x)
        out = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        count, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        assert count is not None and running_mean is not None and running_var is not None  # tracked
        with torch.no_grad():
            count.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(count)
            axes = [0] + list(range(2, x.ndim))  # running ← (1 − m)·running + m·batch
            for running, batch in ((running_mean, x.mean(axes)), (running_var, x.var(axes, unbiased=False))):
                running.copy_((1 - m) * running + m * batch)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + ", running_var_correction=0"


class BiasedVarBatchNorm1d(_BiasedRunningVar, torch.nn.BatchNorm1d):
    """torch.nn.BatchNorm1d with the biased running variance (see _BiasedRunningVar)."""


class BiasedVarBatchNorm2d(_BiasedRunningVar, torch.nn.BatchNorm2d):
    """torch.nn.BatchNorm2d with the biased running variance (see _BiasedRunningVar)."""


def penalty_of(kind: str, coefficients: tuple[float, ...], p: torch.Tensor) -> torch.Tensor:
    """The tl.nn regularizers' formulas, op for op: L2 lam·Σp², L1 lam·Σ|p|, L1L2 both."""
    if kind == "L2":
        return coefficients[0] * (p ** 2).sum()
    if kind == "L1":
        return coefficients[0] * p.abs().sum()
    return coefficients[0] * p.abs().sum() + coefficients[1] * (p ** 2).sum()


class Sequential(torch.nn.Sequential):
    """torch.nn.Sequential with `regularization_loss()`: the tl model's penalty terms that were
    not turned into an optimizer's weight_decay, as one torch expression (0 if none).

    `penalties` maps a parameter's dotted name to (kind, coefficients), e.g.
    {"dense.weight": ("L2", (0.01,))}: loss = data_loss + model.regularization_loss()."""

    def __init__(self, modules: OrderedDict[str, torch.nn.Module],
                 penalties: dict[str, tuple[str, tuple[float, ...]]] | None = None) -> None:
        super().__init__(modules)
        self.penalties = dict(penalties or {})

    def regularization_loss(self) -> torch.Tensor:
        params = dict(self.named_parameters())
        total: Any = None
        for name, (kind, coefficients) in self.penalties.items():
            term = penalty_of(kind, coefficients, params[name])
            total = term if total is None else total + term
        if total is None:
            dtype = next((p.dtype for p in params.values()), torch.get_default_dtype())
            return torch.zeros((), dtype=dtype)
        return total

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {kind}{coefficients}"
                         for name, (kind, coefficients) in self.penalties.items())
