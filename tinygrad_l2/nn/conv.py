"""Convolution (NCHW, PyTorch's semantics), forward and backward side by side, and the window
helpers pooling shares (pooling.py).

Every op looks at the input through `sliding_window_view`: for output position (p, q) and
kernel offset (i, j) the window reads x[..., p·sh + i·dh, q·sw + j·dw] (stride s, dilation d).
The backward of such a gather is a scatter-add, done once per kernel offset (i, j) over all
positions at once: kh·kw vectorised steps.
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


def padding_of(padding, kernel, stride, op, dilation=(1, 1)):
    """((top, bottom), (left, right)) from an int, a pair, "valid" or "same".  "same" needs
    stride 1 and pads d·(k − 1) in all; when that is odd the extra row/column goes to the
    bottom/right (PyTorch)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                             f"(stride {stride}), as in PyTorch")
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    values = (padding, padding) if isinstance(padding, (int, np.integer)) else padding
    if not isinstance(values, (tuple, list)) or len(values) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"{op}: padding must be an int >= 0, a pair of them, 'valid' or 'same', "
                         f"got {padding!r}")
    return (int(values[0]), int(values[0])), (int(values[1]), int(values[1]))


def extent(kernel, dilation):
    """The rows and columns a dilated kernel spans: d·(k − 1) + 1 each."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))


def windows(x, kernel, stride, dilation=(1, 1)):
    """x (N, C, H, W) -> a view (N, C, H', W', kh, kw) of every window (no copy)."""
    view = sliding_window_view(x, extent(kernel, dilation), axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def scatter_windows(grad_windows, in_shape, kernel, stride, dilation=(1, 1)):
    """The adjoint of `windows`: add each window's gradient (N, C, H', W', kh, kw) back where
    the window came from, in an array of `in_shape`."""
    out = np.zeros(in_shape, dtype=grad_windows.dtype)
    rows, cols = grad_windows.shape[2], grad_windows.shape[3]
    (sh, sw), (dh, dw) = stride, dilation
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            out[:, :, i * dh:i * dh + sh * rows:sh, j * dw:j * dw + sw * cols:sw] += \
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
    """z[n, o, p, q] = Σ_c,i,j x_pad[n, c, p·sh + i·dh, q·sw + j·dw] · w[o, c, i, j]  (+ b[o])

        dz/dw[o, c, i, j] = Σ_n,p,q g[n, o, p, q] · x_pad[n, c, p·sh + i·dh, q·sw + j·dw]
        dz/dx_pad[n, c, p·sh + i·dh, q·sw + j·dw] += Σ_o g[n, o, p, q] · w[o, c, i, j]
        dz/db[o] = Σ_n,p,q g[n, o, p, q]

    With G groups, c runs over the C/G input channels of output o's group only: each group is
    the convolution above on its slice of the channels (G = C: depthwise).
    """
    __slots__ = ("stride", "padding", "dilation", "groups", "in_shape")

    def forward(self, x, w, b=None):
        _check_input("conv2d", x)
        self._check_weight(x, w, b)
        (top, bottom), (left, right) = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) if any(
            self.padding[0] + self.padding[1]) else x
        span = extent(w.shape[2:], self.dilation)
        if xp.shape[2] < span[0] or xp.shape[3] < span[1]:
            raise ValueError(f"conv2d: kernel {w.shape[2:]} (dilation {self.dilation}: spanning "
                             f"{span}) is larger than the padded input {xp.shape[2:]}")
        self.in_shape = x.shape
        self.save_for_backward(xp, w)
        view = windows(xp, w.shape[2:], self.stride, self.dilation)
        outs = [np.tensordot(v, k, axes=([1, 4, 5], [1, 2, 3]))  # (N, H', W', O/G) per group
                for v, k in zip(self._split(view, 1), self._split(w, 0))]
        out = (outs[0] if len(outs) == 1 else np.concatenate(outs, axis=3)).transpose(0, 3, 1, 2)
        if b is not None:
            out = out + b[:, None, None]
        return np.ascontiguousarray(out)

    def _split(self, array, axis):
        """The group slices of `array` along `axis` (the array itself when groups == 1)."""
        return [array] if self.groups == 1 else np.split(array, self.groups, axis=axis)

    def _check_weight(self, x, w, b):
        groups, channels = self.groups, x.shape[1]
        if channels % groups or w.ndim != 4 or w.shape[0] % groups or w.shape[1] * groups != channels:
            per_group = f"{channels // groups}" if channels % groups == 0 else f"{channels}/{groups}"
            raise ValueError(f"conv2d: weight of shape {w.shape} does not fit an input with "
                             f"{channels} channels and groups={groups} (expected (out, {per_group}, "
                             f"kh, kw) with out and {channels} divisible by {groups})")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias of shape {b.shape}, expected ({w.shape[0]},)")

    def backward(self, g):
        xp, w = self.saved_arrays
        need_x, need_w = self.needs_input_grad[:2]
        grad_x = grad_w = grad_b = None
        kernel, g_groups = w.shape[2:], self._split(g, 1)
        if need_w:
            view = windows(xp, kernel, self.stride, self.dilation)
            grads = [np.tensordot(gg, v, axes=([0, 2, 3], [0, 2, 3]))
                     for gg, v in zip(g_groups, self._split(view, 1))]
            grad_w = grads[0] if len(grads) == 1 else np.concatenate(grads, axis=0)
        if need_x:
            per_window = [np.tensordot(gg, k, axes=([1], [0]))  # (N, H', W', C/G, kh, kw)
                          for gg, k in zip(g_groups, self._split(w, 0))]
            per_window = per_window[0] if len(per_window) == 1 else np.concatenate(per_window, axis=3)
            grad_xp = scatter_windows(per_window.transpose(0, 3, 1, 2, 4, 5), xp.shape,
                                      kernel, self.stride, self.dilation)
            (top, _), (left, _) = self.padding
            h, wd = self.in_shape[2:]
            grad_x = grad_xp[:, :, top:top + h, left:left + wd]
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            grad_b = g.sum(axis=(0, 2, 3))
        return (grad_x, grad_w) if len(self.needs_input_grad) == 2 else (grad_x, grad_w, grad_b)

    def label(self):
        return "Conv2d"


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] | str = 0, dilation: int | tuple[int, int] = 1,
           groups: int = 1) -> Tensor:
    """PyTorch's F.conv2d: NCHW input, weight (out, in/groups, kh, kw), optional bias (out,)."""
    stride = pair(stride, "stride", "conv2d")
    dilation = pair(dilation, "dilation", "conv2d")
    groups = positive_int(groups, "groups", "conv2d")
    padding = padding_of(padding, weight.shape[2:], stride, "conv2d", dilation)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)


def positive_int(value, what, op):
    """A positive int, or the op's clear error."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: {what} must be a positive int, got {value!r}")
    return int(value)
