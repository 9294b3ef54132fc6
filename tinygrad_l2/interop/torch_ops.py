"""The torch functions and Tensor methods `from_torch` can replay, each as a tl callable
f(model, *args, **kwargs).  Imports torch: only `from_torch` imports this module."""
from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .. import creation
from ..nn import conv, layers, pooling
from ..tensor import Tensor


def _unary(method: str) -> Callable[..., Any]:
    def call(model, x, *args, inplace=False, **kwargs):
        return getattr(x, method)(*args, **kwargs)
    return call


def _binary(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    return lambda model, a, b: op(a, b)


def _softmax(method):
    def call(model, x, dim=None, _stacklevel=3, dtype=None):
        if dim is None or dtype is not None:
            raise ValueError(f"from_torch: {method} needs an explicit dim and no dtype")
        return getattr(x, method)(dim)
    return call


def _pool(pool, name):
    def call(model, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False, count_include_pad=True, divisor_override=None):
        if padding not in (0, (0, 0)) or dilation not in (1, (1, 1)) or ceil_mode or \
                return_indices or divisor_override is not None:
            raise ValueError(f"from_torch: {name} with padding, dilation, ceil_mode, "
                             f"return_indices or divisor_override is not supported")
        return pool(x, kernel_size, stride or None)
    return call


def _linear(model, x, weight, bias=None):
    z = x @ weight.T
    return z if bias is None else z + bias


def _conv2d(model, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if dilation not in (1, (1, 1)) or groups != 1:
        raise ValueError("from_torch: conv2d with dilation or groups is not supported")
    return conv.conv2d(x, weight, bias, stride, padding)


def _dropout(model, x, p=0.5, training=True, inplace=False):
    """Active while the tl model trains, as `F.dropout(x, p, self.training)` is meant."""
    return layers.dropout(x, p, training and model.training)


def _transpose(model, x, dim0, dim1):
    """torch's transpose swaps two axes (tl's, like numpy's, takes a permutation)."""
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return x.permute(*axes)


def _size(model, x, dim=None):
    return x.shape if dim is None else x.shape[dim]


def _flatten(model, x, start_dim=0, end_dim=-1):
    return x.flatten(start_dim, end_dim)


def _cat(model, tensors, dim=0):
    return creation.cat(list(tensors), dim=dim)


FUNCTIONS: dict[Any, Callable[..., Any]] = {
    operator.add: _binary(operator.add), operator.sub: _binary(operator.sub),
    operator.mul: _binary(operator.mul), operator.truediv: _binary(operator.truediv),
    operator.matmul: _binary(operator.matmul), operator.getitem: _binary(operator.getitem),
    operator.neg: lambda model, x: -x, operator.pow: _binary(operator.pow),
    torch.add: _binary(operator.add), torch.sub: _binary(operator.sub),
    torch.mul: _binary(operator.mul), torch.matmul: _binary(operator.matmul),
    torch.relu: _unary("relu"), F.relu: _unary("relu"), torch.sigmoid: _unary("sigmoid"),
    F.sigmoid: _unary("sigmoid"), torch.tanh: _unary("tanh"), F.tanh: _unary("tanh"),
    torch.exp: _unary("exp"), torch.log: _unary("log"), torch.abs: _unary("abs"),
    torch.sum: _unary("sum"), torch.mean: _unary("mean"), torch.flatten: _flatten,
    F.softmax: _softmax("softmax"), F.log_softmax: _softmax("log_softmax"),
    torch.softmax: _softmax("softmax"), torch.log_softmax: _softmax("log_softmax"),
    F.max_pool2d: _pool(pooling.max_pool2d, "max_pool2d"),
    F.avg_pool2d: _pool(pooling.avg_pool2d, "avg_pool2d"),
    F.linear: _linear, F.conv2d: _conv2d, F.dropout: _dropout, torch.cat: _cat,
    torch.transpose: _transpose, torch.permute: lambda model, x, dims: x.permute(*dims),
    torch.reshape: lambda model, x, shape: x.reshape(shape),
}

METHODS: dict[str, Callable[..., Any]] = {
    **{name: _unary(name) for name in ("relu", "sigmoid", "tanh", "exp", "log", "abs", "sum",
                                       "mean", "view", "reshape", "permute", "pow", "sqrt",
                                       "unsqueeze", "squeeze")},
    "flatten": _flatten, "softmax": _softmax("softmax"), "log_softmax": _softmax("log_softmax"),
    "transpose": _transpose, "size": _size, "contiguous": lambda model, x: x,
    "t": lambda model, x: x.T, "dim": lambda model, x: x.ndim,
}


def function_for(target: Any) -> Callable[..., Any] | None:
    return FUNCTIONS.get(target)


def name_of(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', repr(target))}".lstrip(".")


def is_tensor(value: Any) -> bool:
    return isinstance(value, Tensor)
