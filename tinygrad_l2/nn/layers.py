"""Layers: Linear (with Keras-style kernel/bias regularizers), Sequential and activations."""
import numpy as np

from ..random import as_generator
from ..tensor import Tensor
from .module import Module


class Linear(Module):
    """z = x @ Wᵀ + b, with W of shape (out_features, in_features) and b of shape (out_features,).

    Initialization (PyTorch's default for nn.Linear): W and b drawn from U(−1/√in, 1/√in),
    from `rng` (a numpy Generator or an int seed) or else the generator `tl.manual_seed` sets.

    `kernel_regularizer` / `bias_regularizer` (Keras' names): any callable Tensor -> scalar
    Tensor, such as `tl.nn.L2(0.01)`.  Biases are not regularized unless asked.
    """

    def __init__(self, in_features, out_features, bias=True, kernel_regularizer=None,
                 bias_regularizer=None, dtype=np.float32, rng=None):
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Linear: {what} must be a positive integer, got {n!r}")
        if bias_regularizer is not None and not bias:
            raise ValueError("Linear: bias_regularizer given but bias=False")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = as_generator(rng)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Tensor(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype),
                             requires_grad=True)
        self.bias = (Tensor(rng.uniform(-bound, bound, (out_features,)).astype(dtype),
                            requires_grad=True) if bias else None)
        self.regularizers = {"weight": kernel_regularizer, "bias": bias_regularizer}

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input of shape {x.shape} does not end in in_features="
                             f"{self.in_features}")
        z = x @ self.weight.T
        return z + self.bias if self.bias is not None else z

    def extra_repr(self):
        regs = ", ".join(f"{k}_regularizer={v!r}" for k, v in
                         (("kernel", self.regularizers["weight"]), ("bias", self.regularizers["bias"]))
                         if v is not None)
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}" + (f", {regs}" if regs else ""))


class Sequential(Module):
    """Apply modules in order; they are named "0", "1", ... (so "0.weight", as in PyTorch)."""

    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {i} is a {type(module).__name__}, not a Module")
            setattr(self, str(i), module)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x):
        return x.relu()


class Sigmoid(Module):
    """1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x):
        return x.sigmoid()


class Tanh(Module):
    """tanh x, elementwise."""

    def forward(self, x):
        return x.tanh()
