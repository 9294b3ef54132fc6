"""Pooling (NCHW, PyTorch's semantics): max and average pooling with padding, dilation (max),
ceil_mode and count_include_pad, and adaptive average pooling composed of existing ops.

Output size per spatial dim, PyTorch's formula (k kernel, s stride, p padding, d dilation):

    out = ⌊(H + 2p − d·(k − 1) − 1) / s⌋ + 1        (⌈·⌉ with ceil_mode, but the last
                                                     window must start inside the input or
                                                     its left padding)

Padding is −∞ for max pooling (never picked) and 0 for average pooling; a window running past
the padding (ceil_mode) is cut there.  Average pooling divides each window's sum by its size
within the padded input (count_include_pad=True) or within the input alone (False), or by
`divisor_override`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..creation import stack
from ..ops import Op
from .conv import _check_input, extent, pair, scatter_windows, windows
from .module import Module

if TYPE_CHECKING:
    from ..tensor import Tensor

IntPair = int | tuple[int, int]


def output_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling_output_shape for one dim."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Pool(Op):
    """What max and average pooling share: the geometry, and padding the input so that every
    window of the output exists (the extra rows/columns ceil_mode needs included)."""
    __slots__ = ("kernel", "stride", "padding", "dilation", "ceil_mode", "in_shape", "out_size")

    def _padded(self, x, op, fill):
        """x padded with `fill` so that every window of the output exists."""
        _check_input(op, x)
        self.in_shape = x.shape
        rows, cols = (output_size(n, k, s, p, d, self.ceil_mode) for n, k, s, p, d in
                      zip(x.shape[2:], self.kernel, self.stride, self.padding, self.dilation))
        if rows < 1 or cols < 1:
            raise ValueError(f"{op}: kernel {self.kernel} is larger than the input's {x.shape[2:]} "
                             f"(shape {x.shape}, padding {self.padding}, dilation {self.dilation}): "
                             f"the output would be {rows}×{cols}")
        self.out_size = (rows, cols)
        span = extent(self.kernel, self.dilation)
        pads = [(p, max(p, (n - 1) * s + e - size - p)) for n, s, e, size, p in
                zip(self.out_size, self.stride, span, x.shape[2:], self.padding)]
        return np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=fill) if np.any(pads) else x

    def _windows(self, xp):
        """The view (N, C, H', W', kh, kw) of every window of the padded input."""
        return windows(xp, self.kernel, self.stride, self.dilation)[:, :, :self.out_size[0], :self.out_size[1]]

    def _scatter(self, grad_windows, padded_shape):
        grad = scatter_windows(grad_windows, padded_shape, self.kernel, self.stride, self.dilation)
        (top, left), (h, w) = self.padding, self.in_shape[2:]
        return grad[:, :, top:top + h, left:left + w]


class MaxPool(_Pool):
    """z[n, c, p, q] = max of the window at (p, q);  the gradient goes to the window's maximum
    (on ties, to the first in row-major order, as PyTorch's CPU kernel picks it; a NaN is the
    maximum, the first one if several, as numpy's argmax).

    Computed plane by plane: plane (i, j) is the strided view of what kernel offset (i, j)
    meets in every window, so finding each window's maximum takes kh·kw elementwise steps on
    whole arrays.  Forward keeps where each maximum is in the padded input (a flat index);
    backward puts g there."""
    __slots__ = ("position", "padded_shape")

    def forward(self, x):
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = self._padded(x, "max_pool2d", fill)
        self.padded_shape = xp.shape
        (sh, sw), (dh, dw), (rows, cols) = self.stride, self.dilation, self.out_size
        offsets = [(i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1])]
        planes = np.empty((len(offsets), *xp.shape[:2], rows, cols), dtype=xp.dtype)
        for plane, (i, j) in zip(planes, offsets):  # one copy each: the steps run on contiguous arrays
            plane[...] = xp[:, :, i * dh:i * dh + sh * (rows - 1) + 1:sh, j * dw:j * dw + sw * (cols - 1) + 1:sw]
        height, width = xp.shape[2:]
        corner = ((np.arange(xp.shape[0] * xp.shape[1]) * height)[:, None] + np.arange(rows) * sh) * width
        position = np.take(np.array([i * dh * width + j * dw for i, j in offsets]), self._first_maximum(planes))
        position += (corner[:, :, None] + np.arange(cols) * sw).reshape(position.shape)
        self.save_for_backward(position)
        return np.take(xp, position)

    @staticmethod
    def _first_maximum(planes):
        """The index of the first plane holding each element's maximum (or its first NaN):
        the number of planes before it, counted as the planes that are not it."""
        top = planes[0]
        for plane in planes[1:]:
            top = np.maximum(top, plane)  # NaN wins
        found = np.zeros(top.shape, dtype=np.bool_)
        found_before_last = np.zeros(top.shape, dtype=np.intp)
        for plane in planes[:-1]:
            found |= (plane == top) | (plane != plane)  # this plane or an earlier one is it
            found_before_last += found
        return len(planes) - 1 - found_before_last

    def backward(self, g):
        (position,) = self.saved_arrays
        grad = np.zeros(self.padded_shape, dtype=g.dtype)
        (sh, sw), span = self.stride, extent(self.kernel, self.dilation)
        if sh >= span[0] and sw >= span[1]:  # windows do not overlap: one maximum per element
            np.put(grad, position, g)
        else:
            np.add.at(grad.reshape(-1), position, g)
        (top, left), (h, w) = self.padding, self.in_shape[2:]
        return grad[:, :, top:top + h, left:left + w]

    def label(self):
        return "MaxPool2d"


class AvgPool(_Pool):
    """z[n, c, p, q] = Σ window(p, q) / divisor[p, q];  each element of the window gets
    g[n, c, p, q] / divisor[p, q]."""
    __slots__ = ("count_include_pad", "divisor_override", "divisor", "padded_shape")

    def forward(self, x):
        xp = self._padded(x, "avg_pool2d", 0)
        view, self.padded_shape = self._windows(xp), xp.shape
        self.divisor = self._divisors().astype(x.dtype)
        return view.sum(axis=(-2, -1)) / self.divisor

    def _divisors(self):
        """(rows, cols) window sizes: PyTorch's avg_pool2d kernel, vectorised."""
        if self.divisor_override is not None:
            return np.full(self.out_size, float(self.divisor_override))
        sizes = []
        for n, k, s, p, size in zip(self.out_size, self.kernel, self.stride, self.padding, self.in_shape[2:]):
            start = np.arange(n) * s - p
            end = np.minimum(start + k, size + p)
            inside = np.minimum(end, size) - np.maximum(start, 0)
            sizes.append(end - start if self.count_include_pad else inside)
        return np.multiply.outer(sizes[0], sizes[1]).astype(np.float64)

    def backward(self, g):
        kh, kw = self.kernel
        share = np.broadcast_to((g / self.divisor)[..., None, None], g.shape + (kh, kw))
        return self._scatter(share, self.padded_shape)

    def label(self):
        return "AvgPool2d"


def _geometry(op, kernel_size, stride, padding, dilation=1):
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    pads = (padding, padding) if isinstance(padding, (int, np.integer)) else tuple(padding)
    if len(pads) != 2 or not all(isinstance(p, (int, np.integer)) and 0 <= p <= k // 2
                                 for p, k in zip(pads, kernel)):
        raise ValueError(f"{op}: padding must be an int >= 0 or a pair of them, at most half the "
                         f"kernel {kernel} (PyTorch's rule), got {padding!r}")
    return dict(kernel=kernel, stride=stride, padding=tuple(int(p) for p in pads),
                dilation=pair(dilation, "dilation", op))


def max_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               dilation: IntPair = 1, ceil_mode: bool = False) -> Tensor:
    """PyTorch's F.max_pool2d: stride defaults to the kernel size."""
    geometry = _geometry("max_pool2d", kernel_size, stride, padding, dilation)
    return MaxPool.apply(x, ceil_mode=bool(ceil_mode), **geometry)


def avg_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """PyTorch's F.avg_pool2d: stride defaults to the kernel size."""
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int or None, got {divisor_override!r}")
    return AvgPool.apply(x, ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                           divisor_override=divisor_override, **_geometry("avg_pool2d", kernel_size, stride, padding))


def adaptive_avg_pool2d(x: Tensor, output_size: int | None | tuple[int | None, int | None]) -> Tensor:
    """PyTorch's F.adaptive_avg_pool2d: output cell (i, j) is the mean of rows
    ⌊i·H/oh⌋ … ⌈(i+1)·H/oh⌉ − 1 and likewise columns (None keeps that size).  When the sizes
    divide evenly it is avg_pool2d; otherwise a mean per cell, stacked: composed of existing
    ops, so the gradient comes from the graph."""
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected an input of shape (batch, channels, "
                         f"height, width), got shape {x.shape}")
    (h, w) = x.shape[2:]
    oh, ow = (n if s is None else s for s, n in zip(sizes, (h, w)))
    pair((oh, ow), "output_size", "adaptive_avg_pool2d")
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))
    cells = [x[:, :, i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)].mean(axis=(2, 3))
             for i in range(oh) for j in range(ow)]
    return stack(cells, axis=-1).reshape(x.shape[:2] + (oh, ow))


class MaxPool2d(Module):
    """The maximum of each window (torch.nn.MaxPool2d's arguments but return_indices)."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 dilation: IntPair = 1, ceil_mode: bool = False) -> None:
        super().__init__()
        _geometry("MaxPool2d", kernel_size, stride, padding, dilation)  # refuse bad values now
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean of each window (torch.nn.AvgPool2d's arguments)."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        _geometry("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size; `AdaptiveAvgPool2d(1)` is global average pooling."""

    def __init__(self, output_size: int | None | tuple[int | None, int | None]) -> None:
        super().__init__()
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        pair(tuple(1 if s is None else s for s in sizes), "output_size", "AdaptiveAvgPool2d")
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
