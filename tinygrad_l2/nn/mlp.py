"""MLP: Linear → activation → … → Linear, the network every lesson, test and benchmark uses."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..random import as_generator
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from ..tensor import Tensor
from .module import Module

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


class MLP(Sequential):
    """`MLP((784, 256, 128, 10), activation="relu", kernel_regularizer=tl.nn.L2(1e-4))`:
    Linear(784, 256), ReLU, Linear(256, 128), ReLU, Linear(128, 10) — no activation after
    the last layer (it returns logits, as torchvision.ops.MLP), unless `output_activation`.

    activation / output_activation: "relu", "sigmoid", "tanh" or a Module class.
    kernel_regularizer / bias_regularizer (Keras' names): attached to every layer's weight /
    bias, e.g. tl.nn.L2(0.01); biases are not regularized unless asked.
    Layers are Sequential's "0", "1", ... (so "0.weight", as in PyTorch); `linears` lists the
    Linear layers.  Weights come from `rng` (a Generator or a seed) one layer after another,
    or from the generator `tl.manual_seed` sets.
    """

    def __init__(self, sizes: Sequence[int], activation: str | type[Module] = "relu",
                 kernel_regularizer: Callable[[Tensor], Tensor] | str | None = None, bias_regularizer: Callable[[Tensor], Tensor] | str | None = None,
                 output_activation: str | type[Module] | None = None, dtype: npt.DTypeLike = np.float32,
                 rng: np.random.Generator | int | None = None) -> None:
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                     and n >= 1 for n in sizes):
            raise ValueError(f"MLP: sizes must be at least two positive integers (inputs, ..., "
                             f"outputs), got {sizes!r}")
        hidden, last = _activation(activation, "activation"), _activation(output_activation, "output_activation")
        rng = as_generator(rng)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(n_in, n_out, kernel_regularizer=kernel_regularizer,
                                 bias_regularizer=bias_regularizer, dtype=dtype, rng=rng))
            after = hidden if i < len(sizes) - 2 else last
            if after is not None:
                layers.append(after())
        super().__init__(*layers)
        self.sizes = sizes

    @property
    def linears(self) -> list[Linear]:
        return [m for m in self if isinstance(m, Linear)]


def _activation(activation, what):
    if activation is None and what == "output_activation":
        return None
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation.lower()]
    if isinstance(activation, type) and issubclass(activation, Module):
        return activation
    raise ValueError(f"MLP: {what} must be one of {sorted(ACTIVATIONS)} or a Module class, "
                     f"got {activation!r}")
