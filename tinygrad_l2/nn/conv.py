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

    As one matrix product per group (im2col): the columns matrix X[(c, i, j), (n, p, q)] holds
    what kernel offset (i, j) of channel c meets at output (n, p, q), so z = W·X with W the
    kernel as an (O, C·kh·kw) matrix, G the output gradient as an (O, (p, n, q)) matrix:
    dW = G·Xᵀ, and dX = Wᵀ·G scattered back (col2im).  Channels come first in X so that groups
    are consecutive row blocks; the input is laid out as (C, H, N, W) so that, with stride 1,
    what a kernel offset meets is one contiguous run per channel (see `_window`).
    """
    __slots__ = ("stride", "padding", "dilation", "groups", "in_shape", "out_size")

    def forward(self, x, w, b=None):
        _check_input("conv2d", x)
        self._check_weight(x, w, b)
        xp = self._padded(x, w.shape[2:])
        self.save_for_backward(xp, w)
        columns = self._columns(xp, w.shape[2:])
        rows, cols = self.out_size
        weights = w.reshape(self.groups, w.shape[0] // self.groups, -1)
        out = np.matmul(weights, columns.reshape(self.groups, weights.shape[2], -1))
        out = out.reshape(w.shape[0], rows, x.shape[0], -1)
        if b is not None:  # in place where the dtypes allow: the product is a new array
            out = np.add(out, b[:, None, None, None], out=out if b.dtype == out.dtype else None)
        return np.ascontiguousarray(out[..., :cols].transpose(2, 0, 1, 3))

    @property
    def _wide(self):
        """Stride 1: each kernel offset reads one contiguous run of every padded image."""
        return self.stride == (1, 1)

    def _padded(self, x, kernel):
        """x (N, C, H, W) -> x_pad laid out as (C, Hp, N, Wp), plus a zero row at the bottom
        for the wide runs of `_window` to end in."""
        (top, bottom), (left, right) = self.padding
        n, c, h, wd = x.shape
        size, span = (h + top + bottom, wd + left + right), extent(kernel, self.dilation)
        if size[0] < span[0] or size[1] < span[1]:
            raise ValueError(f"conv2d: kernel {tuple(kernel)} (dilation {self.dilation}: spanning "
                             f"{span}) is larger than the padded input {size}")
        self.in_shape = x.shape
        self.out_size = tuple((p - e) // s + 1 for p, e, s in zip(size, span, self.stride))
        xp = np.zeros((c, size[0] + self._wide, n, size[1]), dtype=x.dtype)
        xp[:, top:top + h, :, left:left + wd] = x.transpose(1, 2, 0, 3)
        return xp

    def _window(self, xp, i, j):
        """The view (C, H', N, Wq) of x_pad (laid out (C, Hp, N, Wp)) that kernel offset
        (i, j) meets: element (c, p, n, q) is x_pad[n, c, p·sh + i·dh, q·sw + j·dw].  With
        stride 1 it is one run per channel (a fast copy), rows Wq = Wp wide: their last
        Wp − W' "garbage" columns run on into the next row.  Their outputs are dropped, and
        their gradients are zero."""
        (sh, sw), (dh, dw), (rows, cols) = self.stride, self.dilation, self.out_size
        if not self._wide:
            return xp[:, i * dh:i * dh + sh * (rows - 1) + 1:sh, :, j * dw:j * dw + sw * (cols - 1) + 1:sw]
        c, _, n, wp = xp.shape
        start = i * dh * n * wp + j * dw
        return xp.reshape(c, -1)[:, start:start + rows * n * wp].reshape(c, rows, n, wp)

    def _columns(self, xp, kernel):
        """The columns matrix as an array (C, kh, kw, H', N, Wq) (im2col)."""
        columns = np.empty((xp.shape[0], *kernel, self.out_size[0], xp.shape[2],
                            xp.shape[3] if self._wide else self.out_size[1]), dtype=xp.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                columns[:, i, j] = self._window(xp, i, j)
        return columns

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
        if self._wide:  # exact unless an inf or a NaN met a garbage column (0·inf), or a true one
            with np.errstate(invalid="ignore"):  # (then redone below)
                grad_x, grad_w = self._gradients(xp, w, g, need_x, need_w, exact=False)
            if all(d is None or np.isfinite(d).all() for d in (grad_x, grad_w)):
                return self._with_bias_gradient(g, grad_x, grad_w)
        return self._with_bias_gradient(g, *self._gradients(xp, w, g, need_x, need_w, exact=True))

    def _with_bias_gradient(self, g, grad_x, grad_w):
        if len(self.needs_input_grad) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, (g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None)

    def _gradients(self, xp, w, g, need_x, need_w, exact):
        """(dx, dw) as the products of the docstring.  The garbage columns of the wide form
        get gradient 0, which adds exactly nothing, as long as it meets only finite numbers
        (`exact` zeroes the garbage columns first instead: no 0·inf)."""
        groups, (rows, cols) = self.groups, self.out_size
        n, out_channels = g.shape[:2]
        grads = np.zeros((out_channels, rows, n, xp.shape[3] if self._wide else cols), dtype=g.dtype)
        grads[..., :cols] = g.transpose(1, 2, 0, 3)
        grads = grads.reshape(groups, out_channels // groups, -1)
        weights = w.reshape(groups, out_channels // groups, -1)
        grad_x = grad_w = None
        if need_w:
            columns = self._columns(xp, w.shape[2:])
            if exact:
                columns[..., cols:] = 0
            columns = columns.reshape(groups, weights.shape[2], -1)
            grad_w = np.matmul(grads, columns.transpose(0, 2, 1)).reshape(w.shape)
        if need_x:
            per_column = np.matmul(weights.transpose(0, 2, 1), grads)
            grad_x = self._col2im(per_column.reshape((xp.shape[0], *w.shape[2:], rows, n, -1)),
                                  xp, exact)
        return grad_x, grad_w

    def _col2im(self, per_column, xp, exact):
        """The adjoint of `_columns`: each column's gradient added back where it was read,
        then the padding cut off: dx as (N, C, H, W)."""
        if exact:
            per_column[..., self.out_size[1]:] = 0
        grad_xp = np.zeros(xp.shape, dtype=per_column.dtype)
        for i in range(per_column.shape[1]):
            for j in range(per_column.shape[2]):
                self._window(grad_xp, i, j)[...] += per_column[:, i, j]
        (top, _), (left, _) = self.padding
        h, wd = self.in_shape[2:]
        return grad_xp[:, top:top + h, :, left:left + wd].transpose(2, 0, 1, 3)

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
