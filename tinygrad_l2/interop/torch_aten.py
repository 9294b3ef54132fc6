"""The ATen ops of a `torch.export` program that `from_torch` can replay, each as a tl callable
f(model, *args, **kwargs) taking the op's schema arguments (torch.ops.aten.linear.default:
input, weight, bias).  Most are torch_ops' callables: an ATen op and its torch function share
the arguments.  Imports torch: only the exported-program route imports this module."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..nn import normalization, pooling
from . import torch_ops

aten = torch.ops.aten


def _with_alpha(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """add.Tensor / sub.Tensor: self op alpha·other."""
    def call(model, a, b, alpha=1):
        return op(a, b if alpha == 1 else b * alpha)
    return call


def _avg_pool2d(model, x, kernel_size, stride=(), padding=0, ceil_mode=False,
                count_include_pad=True, divisor_override=None):
    """aten.avg_pool2d's arguments (no dilation, unlike max_pool2d's) in torch_ops' checks."""
    return torch_ops._pool(pooling.avg_pool2d, "aten.avg_pool2d")(
        model, x, kernel_size, stride, padding, ceil_mode=ceil_mode, divisor_override=divisor_override)


def _batch_norm(model, x, weight, bias, running_mean, running_var, training, momentum, eps,
                cudnn_enabled=True):
    """aten.batch_norm: batch statistics only where the program was exported training and the
    tl model trains (as dropout); otherwise the running statistics."""
    return normalization.batch_norm(x, running_mean, running_var, weight, bias,
                                    training and model.training, momentum, eps)


def _reduce(method: str) -> Callable[..., Any]:
    def call(model, x, dim=None, keepdim=False, dtype=None):
        if dtype is not None:
            raise ValueError(f"from_torch: aten.{method} with dtype={dtype} is not supported")
        return getattr(x, method)(axis=None if dim is None else tuple(dim), keepdims=keepdim)
    return call


_unary = torch_ops._unary
ATEN: dict[Any, Callable[..., Any]] = {
    aten.linear.default: torch_ops._linear, aten.conv2d.default: torch_ops._conv2d,
    aten.batch_norm.default: _batch_norm, aten.dropout.default: torch_ops._dropout,
    aten.max_pool2d.default: torch_ops._pool(pooling.max_pool2d, "aten.max_pool2d"),
    aten.avg_pool2d.default: _avg_pool2d,
    aten.relu.default: _unary("relu"), aten.sigmoid.default: _unary("sigmoid"),
    aten.tanh.default: _unary("tanh"), aten.exp.default: _unary("exp"),
    aten.log.default: _unary("log"), aten.abs.default: _unary("abs"),
    aten.sqrt.default: _unary("sqrt"), aten.neg.default: lambda model, x: -x,
    aten.softmax.int: torch_ops._softmax("softmax"),
    aten.log_softmax.int: torch_ops._softmax("log_softmax"),
    aten.add.Tensor: _with_alpha(lambda a, b: a + b), aten.sub.Tensor: _with_alpha(lambda a, b: a - b),
    aten.mul.Tensor: lambda model, a, b: a * b, aten.div.Tensor: lambda model, a, b: a / b,
    aten.matmul.default: lambda model, a, b: a @ b, aten.mm.default: lambda model, a, b: a @ b,
    aten.pow.Tensor_Scalar: lambda model, x, exponent: x ** exponent,
    aten.mean.dim: _reduce("mean"), aten.sum.dim_IntList: _reduce("sum"),
    aten.flatten.using_ints: torch_ops._flatten, aten.view.default: _unary("reshape"),
    aten.reshape.default: _unary("reshape"),
    aten.permute.default: lambda model, x, dims: x.permute(*dims),
    aten.t.default: lambda model, x: x.T, aten.transpose.int: torch_ops._transpose,
    aten.unsqueeze.default: _unary("unsqueeze"), aten.squeeze.dim: _unary("squeeze"),
    aten.cat.default: torch_ops._cat,
    aten.contiguous.default: lambda model, x, memory_format=None: x,
    aten.clone.default: lambda model, x, memory_format=None: x,
}


def function_for(target: Any) -> Callable[..., Any] | None:
    return ATEN.get(target)


def name_of(target: Any) -> str:
    """aten.linear.default, as torch prints the overload."""
    return str(target)
