"""detect_anomaly: stop at the first op whose value or gradient is NaN or Inf, and say where
the user's code created it (PyTorch's torch.autograd.detect_anomaly)."""
import contextlib
import os
import sys

import numpy as np

from .context import state
from .tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared in an op's output or in a gradient, under detect_anomaly()."""


@contextlib.contextmanager
def detect_anomaly():
    """`with tl.detect_anomaly():` check every op's output in forward and every gradient in
    backward for NaN/Inf, and raise at the first one, naming the op, the tensor and the line of
    user code that created the op.  Off by default; when off it costs one attribute check per
    op.  Per thread, like no_grad."""
    previous = state.anomaly
    state.anomaly = True
    try:
        yield
    finally:
        state.anomaly = previous


def _user_frame():
    """'file:line in function: code' of the innermost caller outside this package."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    import linecache
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}: {code}"


def _describe(node):
    """A tensor, or a graph node standing for one: by name if it has one, else by shape."""
    leaf = isinstance(node, Tensor)
    t = node if leaf else node.tensor()
    if t is not None and t.name:
        return f"'{t.name}' (shape {t.shape})"
    if leaf:
        return f"of shape {t.shape}"
    return f"of shape {node.out_shape} (the output of {type(node).__name__})"


def _bad(array):
    return array.dtype.kind == "f" and not np.all(np.isfinite(array))


def check_forward(ctx, out, inputs):
    ctx.created_at = _user_frame()
    if _bad(out):
        what = "NaN" if np.isnan(out).any() else "Inf"
        sources = ", ".join(_describe(t) for t in inputs)
        raise AnomalyError(f"detect_anomaly: {type(ctx).__name__} produced {what} in its output "
                           f"of shape {out.shape} (inputs: {sources}); the op was created at "
                           f"{ctx.created_at}")


def check_backward(ctx, parent, grad):
    if _bad(grad):
        what = "NaN" if np.isnan(grad).any() else "Inf"
        where = ctx.created_at or "<not recorded: the forward ran outside detect_anomaly()>"
        raise AnomalyError(f"detect_anomaly: the backward of {type(ctx).__name__} produced {what} "
                           f"in the gradient of tensor {_describe(parent)}; the op was created "
                           f"at {where}")
