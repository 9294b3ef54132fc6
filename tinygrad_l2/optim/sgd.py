"""SGD with momentum and (coupled) weight decay, PyTorch's update rule line by line."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .optimizer import Optimizer

if TYPE_CHECKING:
    from ..tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD):

        g ← ∇θ + λ·θ                      (weight_decay λ: coupled L2, ≡ (λ/2)·Σθ² in the loss)
        b ← g  (first step),  b ← μ·b + (1 − τ)·g   (momentum μ, dampening τ)
        g ← g + μ·b  if nesterov else  g ← b
        θ ← θ − lr·g

    With weight_decay it decays every parameter of the group, biases too: put biases in a
    group with weight_decay=0, or put the L2 in the loss (`kernel_regularizer`) instead.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        for group, p, grad in list(self._params_with_grad()):
            state = self.state.setdefault(p, {}) if group["momentum"] != 0 else {}
            self.update(self._data_to_update(p), grad, state, group, self._scratch(p))

    @staticmethod
    def update(data: Any, grad: Any, state: dict[str, Any], group: dict[str, Any], out: Any = None) -> None:
        """One parameter's update, in place on `data` (arrays in; `out` a scratch array for
        lr·g).  The one definition of SGD's math: tl.compile writes it into a compiled step
        by running it on recorded arrays."""
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd != 0:
            grad = grad + wd * data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        data -= np.multiply(grad, lr, out=out)  # θ ← θ − lr·g (into `out`: no new array)
