"""detect_anomaly: stop at the first op whose value or gradient is NaN or Inf, or whose saved
arrays were changed behind the graph's back, and say where the user's code created it
(PyTorch's torch.autograd.detect_anomaly)."""
from __future__ import annotations

import contextlib
import linecache
import os
import sys
from typing import Iterator

import numpy as np

from .context import state

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared in an op's output or in a gradient, or an array an op saved for
    its backward was modified, under detect_anomaly()."""


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """`with tl.detect_anomaly():` check every op's output in forward and every gradient in
    backward for NaN/Inf, keep a copy of what each op saves and verify it is unchanged when
    its backward runs (this catches writes through views numpy cannot lock), and raise at the
    first problem, naming the op, the tensor and the line of user code that created the op.
    Off by default; when off it costs one attribute check per op.  Per thread, like no_grad."""
    previous = state.anomaly
    state.anomaly = state.hooks = True
    try:
        yield
    finally:
        state.anomaly = previous
        state.hooks = previous or state.recorder is not None


def _user_frame():
    """'file:line in function: code' of the innermost caller outside this package."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}: {code}"


def describe(node):
    """A graph node by the tensor it stands for: by name if it has one, else by shape."""
    t = node.tensor()
    if t is not None and t.name:
        return f"'{t.name}' (shape {t.shape})"
    if node.is_leaf:
        return f"of shape {node.out_shape}"
    return f"of shape {node.out_shape} (the output of {type(node).__name__})"


def _describe_input(value):
    name = getattr(value, "name", None)
    return f"'{name}' (shape {value.shape})" if name else f"of shape {np.shape(value)}"


def _bad(array):
    return array.dtype.kind == "f" and not np.all(np.isfinite(array))


def check_forward(node, out, inputs):
    node.created_at = _user_frame()
    if _bad(out):
        what = "NaN" if np.isnan(out).any() else "Inf"
        sources = ", ".join(_describe_input(t) for t in inputs)
        raise AnomalyError(f"detect_anomaly: {type(node).__name__} produced {what} in its output "
                           f"of shape {out.shape} (inputs: {sources}); the op was created at "
                           f"{node.created_at}")


def snapshot_saved(node, inputs):
    """Copies of what `node` saved, each with the tensor it belongs to (for the message)."""
    owners = []
    for array in node.saved_arrays:
        if isinstance(array, np.ndarray):
            owner = next((t for t in inputs if hasattr(t, "_data")
                          and np.may_share_memory(array, t._data)), None)
            owners.append((array, array.copy(), owner))
    node.anomaly_snapshot = owners


def check_saved(node):
    """Raise if an array `node` saved differs from its copy taken at forward."""
    for array, copy, owner in node.anomaly_snapshot or ():
        if array.shape != copy.shape or not np.array_equal(array, copy, equal_nan=True):
            whose = f"tensor {_describe_input(owner)}" if owner is not None else "its output"
            raise AnomalyError(
                f"detect_anomaly: an array that {type(node).__name__} saved for its backward "
                f"({whose}) was modified after the forward (an in-place write, for example "
                f"through a numpy view taken before the forward, which numpy cannot lock); the "
                f"gradient would be wrong. The op was created at {node.created_at}")


def check_backward(node, parent, grad):
    if _bad(grad):
        what = "NaN" if np.isnan(grad).any() else "Inf"
        where = node.created_at or "<not recorded: the forward ran outside detect_anomaly()>"
        raise AnomalyError(f"detect_anomaly: the backward of {type(node).__name__} produced "
                           f"{what} in the gradient of tensor {describe(parent)}; the op was "
                           f"created at {where}")
