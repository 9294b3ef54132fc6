"""tinygrad_l2: a reverse-mode autodiff engine on numpy that shows where L2 enters backprop.

Layers, each importing only the ones before it: context → memory, anomaly → function (tensors'
graph data and nodes) → engine → ops → arrays → tensor_methods → tensor → nn, optim →
compiler, drawing, tracing → lessons (the textbook backprop, the comparisons and the CLI).
Drawing needs the graphviz package; it is imported on first use of `draw_dot` or `render`.
"""
from .anomaly import AnomalyError, detect_anomaly
from .context import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .function import AccumulateGrad, Constant, Function
from .engine import topological_order, unbroadcast
from .tensor import Tensor
from .creation import (arange, cat, eye, full, maximum, minimum, ones, ones_like, rand, randn,
                       stack, tensor, where, zeros, zeros_like)
from .gradcheck import GradcheckError, gradcheck
from .higher_order import CreateGraphError, grad, gradgradcheck
from .random import manual_seed
from .serialization import load, save
from .table import Table
from .trace import trace_terms, with_without
from .compiler import CompileCheckError, CompileWarning, compile
from . import conventions, data, nn, optim
from .interop import from_keras, from_torch, to_torch

__all__ = ["Tensor", "Function", "AccumulateGrad", "Constant", "no_grad", "detect_anomaly",
           "AnomalyError", "enable_grad", "set_grad_enabled", "is_grad_enabled", "gradcheck",
           "GradcheckError", "grad", "gradgradcheck", "CreateGraphError", "topological_order", "unbroadcast", "draw_dot", "render",
           "trace_terms", "with_without", "Table", "manual_seed", "save", "load", "nn", "optim", "data",
           "conventions", "tensor", "zeros", "ones", "full", "randn", "rand", "arange", "eye",
           "zeros_like", "ones_like", "maximum", "minimum", "where", "cat", "stack", "compile",
           "CompileCheckError", "CompileWarning", "from_keras", "from_torch", "to_torch"]
__version__ = "0.1.0"


def __getattr__(name):
    """`tl.draw_dot` and `tl.render` import the drawing package (and graphviz) when first used."""
    if name in ("draw_dot", "render"):
        try:
            from . import drawing
        except ImportError as err:
            raise ImportError(f"tinygrad_l2.{name} needs the graphviz Python package "
                              f"(pip install graphviz graphviz-pure): {err}") from err
        return getattr(drawing, name)
    raise AttributeError(f"module 'tinygrad_l2' has no attribute {name!r}")
