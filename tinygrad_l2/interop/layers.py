"""The few modules a converted model needs beyond tl.nn: named chains, layout changes between
Keras' channels-last tensors and tl.nn's NCHW convolutions, softmax, and Keras' strided "same"
convolution (whose padding depends on the input size and may be uneven)."""
from __future__ import annotations

from typing import Iterable

from ..nn.layers import Conv2d
from ..nn.module import Module
from ..tensor import Tensor


class Chain(Module):
    """Apply named modules in order: parameters read "dense.weight", "conv2d_1.bias" (the names
    the source framework gave its layers), not "0.weight"."""

    def __init__(self, named_modules: Iterable[tuple[str, Module]]) -> None:
        super().__init__()
        for name, module in named_modules:
            if not isinstance(module, Module) or not name or "." in name or name in self.__dict__:
                raise ValueError(f"Chain: can't register {name!r} ({type(module).__name__})")
            setattr(self, name, module)

    def forward(self, x: Tensor) -> Tensor:
        for module in self._modules.values():
            x = module(x)
        return x


class ToChannelsFirst(Module):
    """(N, H, W, C) -> (N, C, H, W): Keras' default layout into the one tl.nn's Conv2d reads."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2)


class ToChannelsLast(Module):
    """(N, C, H, W) -> (N, H, W, C): back to Keras' layout, so that a Flatten orders the
    features as Keras does (row, column, channel) and the next Dense weights line up."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)


class Softmax(Module):
    """softmax along `dim`: e^{x_i} / Σ_j e^{x_j}."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras' (TensorFlow's) "same": out = ⌈size/stride⌉, total padding
    max((out − 1)·stride + kernel − size, 0), the odd pixel at the end (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePaddedConv2d(Conv2d):
    """Conv2d with Keras' padding="same" for any stride: the padding is computed from each
    input's height and width (`same_padding`), so it may differ from side to side."""

    def padding_for(self, x: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
        if x.ndim != 4:
            raise ValueError(f"SamePaddedConv2d: expected an input of shape (batch, channels, "
                             f"height, width), got shape {x.shape}")
        top_bottom, left_right = (same_padding(n, k, s) for n, k, s in
                                  zip(x.shape[2:], self.kernel_size, self.stride))
        return top_bottom, left_right

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding='same' (Keras)")
