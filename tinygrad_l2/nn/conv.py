"""Convolution and pooling ops (NCHW, PyTorch's semantics), forward and backward side by side.

Every op looks at the input through `sliding_window_view`: for output position (p, q) the window
is x[..., p·sh : p·sh + kh, q·sw : q·sw + kw].  The backward of such a gather is a scatter-add,
done once per kernel offset (i, j) over all positions at once: kh·kw vectorised steps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ops import Op

if TYPE_CHECKING:
    from ..tensor import Tensor


def pair(value, what, op):
    """An int or a pair of ints -> a pair of positive ints, or the op's clear error."""
    values = (value, value) if isinstance(value, (int, np.integer)) else value
    if not isinstance(values, (tuple, list)) or len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                   and v >= 1 for v in values):
        raise ValueError(f"{op}: {what} must be a positive int or a pair of them, got {value!r}")
    return int(values[0]), int(values[1])


def padding_of(padding, kernel, stride, op):
    """((top, bottom), (left, right)) from an int, a pair, "valid" or "same".  "same" needs
    stride 1; for an even kernel the extra row/column goes to the bottom/right (PyTorch)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                             f"(stride {stride}), as in PyTorch")
        return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    values = (padding, padding) if isinstance(padding, (int, np.integer)) else padding
    if not isinstance(values, (tuple, list)) or len(values) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"{op}: padding must be an int >= 0, a pair of them, 'valid' or 'same', "
                         f"got {padding!r}")
    return (int(values[0]), int(values[0])), (int(values[1]), int(values[1]))


def windows(x, kernel, stride):
    """x (N, C, H, W) -> a view (N, C, H', W', kh, kw) of every window (no copy)."""
    return sliding_window_view(x, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]


def scatter_windows(grad_windows, in_shape, kernel, stride):
    """The adjoint of `windows`: add each window's gradient (N, C, H', W', kh, kw) back where
    the window came from, in an array of `in_shape`."""
    out = np.zeros(in_shape, dtype=grad_windows.dtype)
    rows, cols = grad_windows.shape[2], grad_windows.shape[3]
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            out[:, :, i:i + stride[0] * rows:stride[0], j:j + stride[1] * cols:stride[1]] += \
                grad_windows[:, :, :, :, i, j]
    return out


def _check_input(op, x, kernel=None):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected an input of shape (batch, channels, height, width), got "
                         f"shape {x.shape}")
    if kernel is not None and (x.shape[2] < kernel[0] or x.shape[3] < kernel[1]):
        raise ValueError(f"{op}: kernel {tuple(kernel)} is larger than the input's "
                         f"{x.shape[2:]} (shape {x.shape})")


class Conv2d(Op):
    """z[n, o, p, q] = Σ_c,i,j x_pad[n, c, p·sh + i, q·sw + j] · w[o, c, i, j]  (+ b[o])

        dz/dw[o, c, i, j] = Σ_n,p,q g[n, o, p, q] · x_pad[n, c, p·sh + i, q·sw + j]
        dz/dx_pad[n, c, p·sh + i, q·sw + j] += Σ_o g[n, o, p, q] · w[o, c, i, j]
        dz/db[o] = Σ_n,p,q g[n, o, p, q]
    """
    __slots__ = ("stride", "padding", "in_shape")

    def forward(self, x, w, b=None):
        _check_input("conv2d", x)
        if w.ndim != 4 or w.shape[1] != x.shape[1]:
            raise ValueError(f"conv2d: weight of shape {w.shape} does not fit an input with "
                             f"{x.shape[1]} channels (expected (out, {x.shape[1]}, kh, kw))")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias of shape {b.shape}, expected ({w.shape[0]},)")
        (top, bottom), (left, right) = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) if any(
            self.padding[0] + self.padding[1]) else x
        if xp.shape[2] < w.shape[2] or xp.shape[3] < w.shape[3]:
            raise ValueError(f"conv2d: kernel {w.shape[2:]} is larger than the padded input "
                             f"{xp.shape[2:]}")
        self.in_shape = x.shape
        self.save_for_backward(xp, w)
        out = np.tensordot(windows(xp, w.shape[2:], self.stride), w, axes=([1, 4, 5], [1, 2, 3]))
        out = out.transpose(0, 3, 1, 2)  # (N, H', W', O) -> (N, O, H', W')
        if b is not None:
            out = out + b[:, None, None]
        return np.ascontiguousarray(out)

    def backward(self, g):
        xp, w = self.saved_arrays
        need_x, need_w = self.needs_input_grad[:2]
        grad_x = grad_w = grad_b = None
        if need_w:
            grad_w = np.tensordot(g, windows(xp, w.shape[2:], self.stride),
                                  axes=([0, 2, 3], [0, 2, 3]))
        if need_x:
            per_window = np.tensordot(g, w, axes=([1], [0]))  # (N, H', W', C, kh, kw)
            grad_xp = scatter_windows(per_window.transpose(0, 3, 1, 2, 4, 5), xp.shape,
                                      w.shape[2:], self.stride)
            (top, _), (left, _) = self.padding
            h, wd = self.in_shape[2:]
            grad_x = grad_xp[:, :, top:top + h, left:left + wd]
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            grad_b = g.sum(axis=(0, 2, 3))
        return (grad_x, grad_w) if len(self.needs_input_grad) == 2 else (grad_x, grad_w, grad_b)

    def label(self):
        return "Conv2d"


class MaxPool2d(Op):
    """z[n, c, p, q] = max of the window at (p, q);  the gradient goes to the window's maximum
    (on ties, to the first in row-major order, as PyTorch's CPU kernel picks it)."""
    __slots__ = ("kernel", "stride", "in_shape")

    def forward(self, x):
        _check_input("max_pool2d", x, self.kernel)
        view = windows(x, self.kernel, self.stride)
        flat = view.reshape(view.shape[:4] + (-1,))
        self.in_shape = x.shape
        choice = flat.argmax(axis=-1)
        self.save_for_backward(choice)
        return np.take_along_axis(flat, choice[..., None], axis=-1)[..., 0]

    def backward(self, g):
        (choice,) = self.saved_arrays
        kh, kw = self.kernel
        one_hot = np.zeros(choice.shape + (kh * kw,), dtype=g.dtype)
        np.put_along_axis(one_hot, choice[..., None], g[..., None], axis=-1)
        return scatter_windows(one_hot.reshape(choice.shape + (kh, kw)), self.in_shape,
                               self.kernel, self.stride)


class AvgPool2d(Op):
    """z[n, c, p, q] = mean of the window at (p, q);  each window element gets g / (kh·kw)."""
    __slots__ = ("kernel", "stride", "in_shape")

    def forward(self, x):
        _check_input("avg_pool2d", x, self.kernel)
        self.in_shape = x.shape
        return windows(x, self.kernel, self.stride).mean(axis=(-2, -1))

    def backward(self, g):
        kh, kw = self.kernel
        share = np.broadcast_to((g / (kh * kw))[..., None, None], g.shape + (kh, kw))
        return scatter_windows(share, self.in_shape, self.kernel, self.stride)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] | str = 0) -> Tensor:
    """PyTorch's F.conv2d: NCHW input, weight (out, in, kh, kw), optional bias (out,)."""
    stride = pair(stride, "stride", "conv2d")
    padding = padding_of(padding, weight.shape[2:], stride, "conv2d")
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, stride=stride, padding=padding)


def max_pool2d(x: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> Tensor:
    """PyTorch's F.max_pool2d (no padding): stride defaults to the kernel size."""
    kernel = pair(kernel_size, "kernel_size", "max_pool2d")
    stride = kernel if stride is None else pair(stride, "stride", "max_pool2d")
    return MaxPool2d.apply(x, kernel=kernel, stride=stride)


def avg_pool2d(x: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> Tensor:
    """PyTorch's F.avg_pool2d (no padding): stride defaults to the kernel size."""
    kernel = pair(kernel_size, "kernel_size", "avg_pool2d")
    stride = kernel if stride is None else pair(stride, "stride", "avg_pool2d")
    return AvgPool2d.apply(x, kernel=kernel, stride=stride)
