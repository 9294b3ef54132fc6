"""Adam (coupled L2 through weight_decay) and AdamW (decoupled decay), PyTorch's rules."""
from __future__ import annotations

import math

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .optimizer import Optimizer

if TYPE_CHECKING:
    from ..tensor import Tensor


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as torch.optim.Adam computes it:

        g ← ∇θ + λ·θ                         (weight_decay λ: coupled L2, goes through m and v)
        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²               (amsgrad: v_max ← max(v_max, v), used below)
        θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

    Because the L2 gradient λ·θ is divided by √v, weights with large past gradients are
    regularized less: this is why L2 ≠ weight decay for Adam (see AdamW).
    """

    decoupled = False

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def step(self) -> None:
        for group, p, grad in list(self._params_with_grad()):
            state = self.state.setdefault(p, {})
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            step_size, bias2 = self.advance(group, state)
            self.update(self._data_to_update(p), grad, state, group, step_size, bias2)

    @staticmethod
    def advance(group: dict[str, Any], state: dict[str, Any]) -> tuple[float, float]:
        """Count the step; return its Python numbers: lr/(1 − β₁ᵗ) and √(1 − β₂ᵗ)."""
        state["step"] += 1
        beta1, beta2 = group["betas"]
        return group["lr"] / (1 - beta1 ** state["step"]), math.sqrt(1 - beta2 ** state["step"])

    def update(self, data: Any, grad: Any, state: dict[str, Any], group: dict[str, Any],
               step_size: Any, bias2: Any) -> None:
        """One parameter's update, in place on `data` and on its moments (the one definition
        of Adam's math: tl.compile writes it into a compiled step from recorded arrays)."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd != 0:
            if self.decoupled:
                data *= 1 - lr * wd
            else:
                grad = grad + wd * data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = np.sqrt(exp_avg_sq) / bias2 + eps
        data -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as torch.optim.AdamW computes it:

        θ ← θ·(1 − lr·λ)                     (decoupled decay: never enters m or v)
        then Adam's update with the raw gradient.

    The decay term lr·λ·θ is the same whatever the gradients' scale; there is no loss term it
    is equivalent to.
    """

    decoupled = True

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
