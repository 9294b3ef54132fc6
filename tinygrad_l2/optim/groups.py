"""Parameter groups that keep weight decay off normalization and bias parameters, and the
penalty a group's coupled decay stands for (so a picture can show which tensors it reaches).

Does L2 / weight decay apply to BatchNorm's γ and β?  It depends on who you ask:

- Keras: only if you say so.  `BatchNormalization(gamma_regularizer=None,
  beta_regularizer=None)` are the defaults, as `Dense(bias_regularizer=None)`; here the same
  holds for `tl.nn.BatchNorm2d(gamma_regularizer=...)` and `Linear(bias_regularizer=...)`.
- PyTorch: yes.  `SGD(model.parameters(), weight_decay=wd)` decays every parameter of the
  group, γ, β and biases included, unless you split the parameters into groups:

      opt = tl.optim.SGD(tl.optim.param_groups(model, weight_decay=5e-4), lr=0.1, momentum=0.9)

  (groups shaped as torch.optim takes them).  Decay pulls γ towards 0, not towards its
  initial value 1: it shrinks the normalized activations' scale rather than the weights'.
"""
from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..nn.module import Module
from ..tensor import Tensor

if TYPE_CHECKING:
    from .optimizer import Optimizer


def param_groups(model: Module, weight_decay: float, no_decay: Iterable[str] = ("bias",)) -> list[dict[str, Any]]:
    """Two torch-style parameter groups:

        [{"params": decayed, "weight_decay": weight_decay},
         {"params": exempt,  "weight_decay": 0.0}]

    exempt: every parameter of a normalization layer (γ, β of BatchNorm and LayerNorm: a
    module whose class sets `normalization = True`, as your own can), and every parameter
    whose name, or whose last name part, is in `no_decay` (biases by default; add full names
    such as "head.weight").  Parameters keep the model's order; an empty group
    is left out.  Pass the list to any optimizer: `SGD(param_groups(model, 1e-4), lr=0.1)`.
    """
    exempt_names = set(no_decay) if not isinstance(no_decay, str) else {no_decay}
    in_norm_layer = {id(p) for _, module in model.named_modules() if module.normalization
                     for p in module.parameters()}
    decayed: list[Tensor] = []
    exempt: list[Tensor] = []
    for name, p in model.named_parameters():
        skip = id(p) in in_norm_layer or name in exempt_names or name.rpartition(".")[2] in exempt_names
        (exempt if skip else decayed).append(p)
    groups = [{"params": decayed, "weight_decay": float(weight_decay)},
              {"params": exempt, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def decay_penalty(groups: Optimizer | Sequence[dict[str, Any]]) -> Tensor | None:
    """The loss term that coupled weight decay stands for: Σ over groups of (wd/2)·Σθ², whose
    gradient is the wd·θ that SGD and Adam add to each parameter's gradient.  Drawing
    `loss + decay_penalty(opt)` shows which tensors the optimizer's decay reaches.  None if
    no group decays.  AdamW's decoupled decay has no loss equivalent: refused."""
    if getattr(groups, "decoupled", False):
        raise ValueError(f"decay_penalty: {type(groups).__name__}'s decoupled weight decay shrinks "
                         f"θ outside the gradient; no loss term is equivalent to it")
    group_list = groups if isinstance(groups, Sequence) else groups.param_groups
    terms = [(group["weight_decay"] / 2) * (p * p).sum() for group in group_list
             for p in group["params"] if group.get("weight_decay", 0)]
    if not terms:
        return None
    penalty = functools.reduce(operator.add, terms)
    penalty.name = "decay penalty"
    return penalty
