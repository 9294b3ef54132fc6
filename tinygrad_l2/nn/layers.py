"""Layers: Linear and Conv2d (with Keras-style kernel/bias regularizers), pooling, Flatten, Dropout,
Sequential, ModuleList and activations."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt

from ..ops import Op
from ..ops.base import PIECEWISE_CONSTANT
from ..random import as_generator, default_generator
from ..tensor import Tensor
from . import conv, regularizers
from .module import Module


class _Regularized(Module):
    """A layer with Keras-style `kernel_regularizer` / `bias_regularizer` attributes (kept in
    `regularizers`, which `Module.named_penalties` reads)."""
    weight: Tensor
    bias: Tensor | None

    @property
    def kernel_regularizer(self) -> Callable[[Tensor], Tensor] | None:
        return self.regularizers["weight"]

    @kernel_regularizer.setter
    def kernel_regularizer(self, regularizer: Callable[[Tensor], Tensor] | str | None) -> None:
        self.regularizers["weight"] = regularizers.get(
            regularizer, f"{type(self).__name__}: kernel_regularizer")

    @property
    def bias_regularizer(self) -> Callable[[Tensor], Tensor] | None:
        return self.regularizers["bias"]

    @bias_regularizer.setter
    def bias_regularizer(self, regularizer: Callable[[Tensor], Tensor] | str | None) -> None:
        regularizer = regularizers.get(regularizer, f"{type(self).__name__}: bias_regularizer")
        if regularizer is not None and self.bias is None:
            raise ValueError(f"{type(self).__name__}: bias_regularizer given but the layer has no bias")
        self.regularizers["bias"] = regularizer


class Linear(_Regularized):
    """z = x @ Wᵀ + b, with W of shape (out_features, in_features) and b of shape (out_features,).

    Initialization (PyTorch's default for nn.Linear): W and b drawn from U(−1/√in, 1/√in),
    from `rng` (a numpy Generator or an int seed) or else the generator `tl.manual_seed` sets.

    `kernel_regularizer` / `bias_regularizer` (Keras' names): any callable Tensor -> scalar
    Tensor, such as `tl.nn.L2(0.01)`, or Keras' names "l2", "l1", "l1_l2" (default
    coefficients); anything else is refused here.  Biases are not regularized unless asked.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 kernel_regularizer: Callable[[Tensor], Tensor] | str | None = None, bias_regularizer: Callable[[Tensor], Tensor] | str | None = None,
                 dtype: npt.DTypeLike = np.float32, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Linear: {what} must be a positive integer, got {n!r}")
        if bias_regularizer is not None and not bias:
            raise ValueError("Linear: bias_regularizer given but bias=False")
        self.in_features, self.out_features = int(in_features), int(out_features)
        _init_parameters(self, (out_features, in_features), in_features, bias,
                         kernel_regularizer, bias_regularizer, dtype, rng)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input of shape {x.shape} does not end in in_features="
                             f"{self.in_features}")
        z = x @ self.weight.T
        return z + self.bias if self.bias is not None else z

    def extra_repr(self) -> str:
        regs = ", ".join(f"{k}_regularizer={v!r}" for k, v in
                         (("kernel", self.regularizers["weight"]), ("bias", self.regularizers["bias"]))
                         if v is not None)
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}" + (f", {regs}" if regs else ""))


def _init_parameters(layer, shape, fan_in, bias, kernel_regularizer, bias_regularizer, dtype, rng):
    """PyTorch's default initialization for Linear and Conv2d: weight of `shape` and bias of
    (shape[0],) from U(−1/√fan_in, 1/√fan_in); Keras-style regularizers per parameter."""
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"{type(layer).__name__}: dtype must be a floating-point dtype (its "
                        f"parameters need gradients), got {np.dtype(dtype)}")
    rng = as_generator(rng)
    bound = 1.0 / np.sqrt(fan_in)
    layer.weight = Tensor(rng.uniform(-bound, bound, shape).astype(dtype), requires_grad=True)
    layer.bias = (Tensor(rng.uniform(-bound, bound, (shape[0],)).astype(dtype), requires_grad=True)
                  if bias else None)
    name = type(layer).__name__
    layer.regularizers = {"weight": regularizers.get(kernel_regularizer, f"{name}: kernel_regularizer"),
                          "bias": regularizers.get(bias_regularizer, f"{name}: bias_regularizer")}


class Sequential(Module):
    """Apply modules in order; they are named "0", "1", ... (so "0.weight", as in PyTorch)."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {i} is a {type(module).__name__}, not a Module")
            setattr(self, str(i), module)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, x: Tensor) -> Tensor:
        for module in self._modules.values():
            x = module(x)
        return x


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    """1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    """tanh x, elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Conv2d(_Regularized):
    """z = x ⋆ W + b (cross-correlation, NCHW), W of shape (out, in, kh, kw), b of shape (out,).

    PyTorch's arguments and default initialization (W and b from U(−1/√fan_in, 1/√fan_in),
    fan_in = in·kh·kw); padding an int, a pair, "valid" or "same" (stride 1).  Keras' names for
    the penalties: `Conv2d(1, 16, 5, padding="same", kernel_regularizer=tl.nn.L2(reg))` is
    `Conv2D(16, (5, 5), padding="same", kernel_regularizer=l2(reg))`: reg·ΣW² added to the loss.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | str = 0, dilation: int | tuple[int, int] = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", kernel_regularizer: Callable[[Tensor], Tensor] | str | None = None,
                 bias_regularizer: Callable[[Tensor], Tensor] | str | None = None, dtype: npt.DTypeLike = np.float32,
                 rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        for what, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Conv2d: {what} must be a positive integer, got {n!r}")
        if bias_regularizer is not None and not bias:
            raise ValueError("Conv2d: bias_regularizer given but bias=False")
        self.kernel_size = conv.pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = conv.pair(stride, "stride", "Conv2d")
        self.dilation = conv.pair(dilation, "dilation", "Conv2d")
        self.groups = _conv_groups(groups, in_channels, out_channels, padding_mode)
        self.padding = conv.padding_of(padding, self.kernel_size, self.stride, "Conv2d", self.dilation)
        self.padding_arg, self.padding_mode = padding, padding_mode
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        per_group = in_channels // self.groups
        _init_parameters(self, (out_channels, per_group) + self.kernel_size,
                         per_group * self.kernel_size[0] * self.kernel_size[1], bias,
                         kernel_regularizer, bias_regularizer, dtype, rng)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x, dtype=self.weight.dtype)
        args = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        return conv.Conv2d.apply(*args, stride=self.stride, padding=self.padding_for(x),
                                 dilation=self.dilation, groups=self.groups)

    def padding_for(self, x: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) for this input: the layer's fixed padding."""
        return self.padding

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding_arg!r}"
                + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")
                + (f", groups={self.groups}" if self.groups != 1 else ""))


def _conv_groups(groups, in_channels, out_channels, padding_mode):
    """Conv2d's groups, checked against the channels (PyTorch's messages); only zero padding."""
    if padding_mode != "zeros":
        known = ("reflect", "replicate", "circular")
        raise ValueError(f"Conv2d: padding_mode={padding_mode!r} is not supported: only 'zeros' is"
                         + (" (PyTorch's 'reflect', 'replicate' and 'circular' are not implemented)"
                            if padding_mode in known else f"; PyTorch accepts 'zeros' or {known}"))
    groups = conv.positive_int(groups, "groups", "Conv2d")
    for what, n in (("in_channels", in_channels), ("out_channels", out_channels)):
        if n % groups:
            raise ValueError(f"Conv2d: {what} must be divisible by groups, got {what}={n} and "
                             f"groups={groups}")
    return groups


class Flatten(Module):
    """Merge axes start_dim..end_dim into one (PyTorch's defaults keep the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)  # out-of-range dims: IndexError (PyTorch)


class Dropout(Module):
    """Inverted dropout: in training, each element is zeroed with probability p and the rest
    scaled by 1/(1 − p) (so eval needs no change); the identity in eval mode.  The mask comes
    from the generator `tl.manual_seed` seeds."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _probability("Dropout", p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """PyTorch's F.dropout: x · mask / (1 − p) with mask ~ Bernoulli(1 − p), when training."""
    p = _probability("dropout", p)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    return InvertedDropout.apply(x, p=p)


class InvertedDropout(Op):
    """z = x · keep / (1 − p), keep ~ Bernoulli(1 − p) drawn from tl's default generator;
    dz/dx = keep / (1 − p), the same scaled mask.  An op (not a product with a constant mask),
    so that a compiled step replays it through this forward, drawing a new mask each call."""
    __slots__ = ("p",)
    saved_from = (PIECEWISE_CONSTANT,)  # the mask: no derivative

    def forward(self, x):
        scale = ((default_generator().random(x.shape) >= self.p) / (1 - self.p)).astype(x.dtype)
        self.save_for_backward(scale)
        return x * scale

    def backward(self, g):
        return g * self.saved_arrays[0]


def _probability(op, p):
    if not isinstance(p, (int, float, np.floating)) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ... (so their parameters and regularizers
    count): append, extend, insert, indexing, len and iteration, as PyTorch's."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self.extend(modules)

    def _items(self):
        return list(self._modules.values())

    def _reset(self, items):
        for name in list(self._modules):
            delattr(self, name)
            self._modules.pop(name, None)
        for i, module in enumerate(items):
            if not isinstance(module, Module):
                raise TypeError(f"ModuleList: item {i} is a {type(module).__name__}, not a Module")
            setattr(self, str(i), module)

    def append(self, module: Module) -> ModuleList:
        self._reset(self._items() + [module])
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        self._reset(self._items() + list(modules))
        return self

    def insert(self, index: int, module: Module) -> None:
        items = self._items()
        items.insert(index, module)
        self._reset(items)

    def __getitem__(self, i: int) -> Module:
        items = self._items()
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())
