"""tinygrad_l2: a reverse-mode autodiff engine on numpy that shows where L2 enters backprop."""
from .anomaly import AnomalyError, detect_anomaly
from .context import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .draw import draw_dot, render
from .trace import trace_terms, with_without
from .table import Table
from .engine import grad, topological_order, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor
from .random import manual_seed
from .serialization import load, save
from . import conventions, nn, optim

__all__ = ["Tensor", "no_grad", "detect_anomaly", "AnomalyError", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "gradcheck", "GradcheckError", "grad", "topological_order", "unbroadcast",
           "draw_dot", "render", "trace_terms", "with_without", "Table", "manual_seed", "save", "load", "nn", "optim", "conventions"]
__version__ = "0.1.0"
