"""The graph's building blocks: what the engine knows of a tensor, and its two kinds of node.

- `TensorBase`: an array, its gradient and its link to the graph.  `tensor.py` builds the
  user-facing `Tensor` (the math and the Python protocol) on top of it.
- `Function`: an op and its node in the graph (PyTorch's `autograd.Function` and `ctx` in one),
  the public way to define a differentiable op on numpy arrays.
- `AccumulateGrad` / `Constant`: how a leaf tensor enters the graph (as in PyTorch).  The
  first sends the gradient that reaches it into the tensor's `.grad`; the second marks an input
  that requires no grad (it is drawn, never differentiated).

Every node has the same small interface: `parents` (input nodes; None for an argument that is
not a tensor), `requires_grad`, `out_shape`, `out_dtype`, `is_leaf`, `tensor()` and `label()`.

Memory: an op node holds its inputs' nodes and what its forward saved, and only a weak
reference to its output tensor; a tensor holds its op node, and only a weak reference to its
leaf node.  So a graph has no reference cycles: reference counting alone frees it, and an
intermediate's array lives exactly as long as the user or a saved array needs it.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from . import anomaly, memory
from .context import record, record_user_access, state


class TensorBase:
    """An ndarray (`_data`), its gradient, and its place in the graph: `_ctx`, the op node that
    made it (None for a leaf); `_leaf`, a weak reference to the leaf node standing for it."""

    __slots__ = ("_data", "_grad", "_requires_grad", "name", "_ctx", "_leaf",
                 "__weakref__")
    _data: np.ndarray
    _grad: np.ndarray | None
    _requires_grad: bool
    name: str | None
    _ctx: Function | None
    _leaf: weakref.ref | None

    @classmethod
    def _make(cls, data, ctx):
        """An op's output: `data` is already a valid ndarray; `ctx` is None or the op node."""
        t = object.__new__(cls)
        t._data, t._grad, t.name, t._ctx, t._leaf = data, None, None, ctx, None
        t._requires_grad = ctx is not None
        return t

    def _node(self):
        """This tensor's node in the graph: its op node, or its (cached) leaf node."""
        if self._ctx is not None:
            return self._ctx
        leaf = self._leaf and self._leaf()
        if leaf is None:
            leaf = (AccumulateGrad if self._requires_grad else Constant)(self)
            self._leaf = weakref.ref(leaf)
        return leaf

    # ---- gradient ------------------------------------------------------------------------
    @property
    def grad(self) -> np.ndarray | None:
        """d(root)/d(self) summed over backward calls (a numpy array), or None (a non-leaf's,
        unless it called `retain_grad()`: reading it then warns, as in PyTorch)."""
        if self._ctx is not None and not self._ctx.retains_grad:
            warnings.warn(_NON_LEAF_GRAD, UserWarning, stacklevel=2)
        record_user_access("the step reads a tensor's .grad")  # (only while tl.compile traces)
        return self._grad

    @grad.setter
    def grad(self, value: npt.ArrayLike | None) -> None:
        """Like PyTorch: None, or a numeric array of exactly this tensor's shape (converted to
        its dtype).  Checked here so that a later backward never broadcasts into a wrong one."""
        record_user_access("the step assigns a tensor's .grad")
        if value is not None:
            value = getattr(value, "_data", value)
            if not isinstance(value, np.ndarray | np.generic) or value.dtype.kind not in "fiu":
                raise TypeError(f"grad: assigned grad must be a numeric numpy array, got "
                                f"{type(value).__name__}"
                                + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else ""))
            if value.shape != self._data.shape:
                raise ValueError(f"grad: assigned grad has shape {value.shape}, but the tensor has "
                                 f"shape {self._data.shape}; they must be equal")
            if value.dtype != self._data.dtype:
                value = value.astype(self._data.dtype)
            value = np.asarray(value)
        self._grad = value

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if self._ctx is not None and not value:
            raise RuntimeError("requires_grad: you can only change requires_grad of leaf "
                               "tensors; use detach() to get a tensor without a graph")
        if value and self._data.dtype.kind != "f":
            raise TypeError(f"requires_grad: only float tensors can require gradients, this tensor "
                            f"has dtype {self._data.dtype} (pass dtype=np.float32 or np.float64)")
        if value != self._requires_grad:
            self._leaf = None  # graphs built from now on see the new setting
            record("requires_grad", self, value)  # (a step that freezes a model, as a GAN's does)
        self._requires_grad = value

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        """The op node that made this tensor (None for a leaf)."""
        return self._ctx

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: can't retain the gradient of a tensor that does "
                               "not require grad")
        if self._ctx is not None:
            self._ctx.retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._ctx is not None and self._ctx.retains_grad


_NON_LEAF_GRAD = ("The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                  "attribute won't be populated during backward(). If you indeed want the .grad field to "
                  "be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you "
                  "access the non-leaf Tensor by mistake, make sure you access the leaf Tensor instead.")

# ---- leaves ----------------------------------------------------------------------------------

class Leaf:
    """A leaf tensor in the graph.  Holds the tensor (a graph keeps its inputs alive) and the
    shape and dtype it had when the graph was built."""

    __slots__ = ("variable", "out_shape", "out_dtype", "__weakref__")
    parents = ()
    is_leaf = True
    retains_grad = False

    def __init__(self, tensor):
        self.variable = tensor
        self.out_shape, self.out_dtype = tensor._data.shape, tensor._data.dtype

    def tensor(self) -> TensorBase | None:
        return self.variable

    def label(self) -> str:
        return type(self).__name__


class AccumulateGrad(Leaf):
    """A leaf that requires grad: the gradient reaching it is added to the tensor's `.grad`."""
    __slots__ = ()
    requires_grad = True


class Constant(Leaf):
    """A leaf that requires no grad (data, targets): drawn, never differentiated."""
    __slots__ = ()
    requires_grad = False


# ---- ops ---------------------------------------------------------------------------------------

class Function:
    """A differentiable op on numpy arrays; each call's instance is its node in the graph.

        class Cube(tl.Function):
            def forward(self, x):              # arrays in (other arguments as given), one array out
                self.save_for_backward(x)
                return x ** 3
            def backward(self, grad):          # d(root)/d(output) -> one gradient per input:
                (x,) = self.saved_arrays       # a bare array for one input, a tuple otherwise;
                return 3 * x ** 2 * grad       # None where there is none
        y = Cube.apply(t)                      # keyword arguments become attributes: self.k

    Positional arguments that are Tensors enter the graph; any others (Python scalars, axes)
    are passed to `forward` as they are and get no gradient.  `self.needs_input_grad` says, per
    argument, whether a gradient is wanted (backward may return None for the others).

    The engine checks what backward returns and names the op when it is wrong: the number of
    gradients, a gradient that is not a numeric array, or one whose shape is neither the
    input's nor the output's (an output-shaped gradient of a broadcast input is summed back to
    the input's shape by `unbroadcast`; every other shape is an error).  Gradients are cast to
    the input's dtype.  Backward must not modify `grad` in place; it may return it.

    While the node exists, the arrays given to `save_for_backward` are read-only (see
    `memory`): a write that would change a pending gradient fails at the write.  After a
    backward without `retain_graph`, they are released.
    """

    # Slots for what every node stores; the rare attributes (apply's keyword arguments on a
    # custom op, retains_grad, what detect_anomaly records) go to a dict made only when used.
    __slots__ = ("parents", "saved_arrays", "out_shape", "out_dtype", "output", "hold",
                 "__dict__", "__weakref__")
    parents: tuple[Any, ...]
    saved_arrays: tuple[np.ndarray, ...] | None
    out_shape: tuple[int, ...]
    out_dtype: np.dtype
    output: weakref.ref
    hold: Any
    requires_grad = True  # a node exists only where some input requires grad
    is_leaf = False
    retains_grad = False  # set by Tensor.retain_grad() on the node of the tensor to keep
    created_at = None  # the line of user code that ran the op, under detect_anomaly()
    anomaly_snapshot = None
    # True when backward returns only new arrays, `grad` itself or views of it (never an array
    # it keeps or shares): the engine may then sum gradients into them in place.  The built-in
    # ops say so; a custom op that does not is never written into.
    fresh_gradients = False

    def forward(self, *args: Any) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, *arrays)")

    def backward(self, grad: np.ndarray) -> np.ndarray | tuple[np.ndarray | None, ...] | None:
        raise NotImplementedError(f"{type(self).__name__} must define backward(self, grad) to "
                                  f"be differentiable")

    def save_for_backward(self, *arrays: np.ndarray) -> None:
        """Keep arrays for backward (read them back as `self.saved_arrays`)."""
        self.saved_arrays = arrays

    @classmethod
    def apply(cls, *args: Any, **attributes: Any) -> Any:
        """Run the op; record a node when grad mode is on and some Tensor argument requires
        grad.  Returns a Tensor of the type of the first Tensor argument.  (The hot path of
        every op: plain loops and stores, no helper calls.)"""
        node = cls.__new__(cls)
        node.saved_arrays = ()
        if attributes:
            for key, value in attributes.items():
                setattr(node, key, value)
        arrays, parents, output_type, record = [], [], None, False
        recording = state.grad_enabled
        for x in args:
            if isinstance(x, TensorBase):
                arrays.append(x._data)
                if output_type is None:
                    output_type = type(x)
                if recording:  # its op node, or its leaf node (AccumulateGrad or Constant)
                    parents.append(x._ctx or x._node())
                    record = record or x._requires_grad
                    continue
            else:
                arrays.append(x)
            parents.append(None)
        if output_type is None:
            raise TypeError(f"{cls.__name__}.apply: expected at least one Tensor argument, got "
                            f"{', '.join(type(x).__name__ for x in args) or 'none'}")
        node.parents = tuple(parents)
        try:
            out = node.forward(*arrays)
        except ValueError as err:
            raise node.explain(err, arrays) from None
        kind = out.dtype.kind if type(out) is np.ndarray else None
        if kind not in _NUMERIC:
            out, kind = _as_output(cls, out)
        if state.hooks:  # detect_anomaly() or a tracing tl.compile: off, one check per op
            _observe(node, out, args, attributes)
        result = output_type.__new__(output_type)
        result._data, result._grad, result.name, result._leaf = out, None, None, None
        if not record or kind != "f":  # only float outputs carry gradients
            result._ctx, result._requires_grad = None, False
            return result
        result._ctx, result._requires_grad = node, True
        node.out_shape, node.out_dtype = out.shape, out.dtype
        node.output = weakref.ref(result)
        if node.saved_arrays:
            node.hold = memory.Hold(node.saved_arrays)
            if state.anomaly:
                anomaly.snapshot_saved(node, args)
        return result

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """For each argument of apply: does it need a gradient?  (False for arguments that are
        not Tensors, for Tensors that require none, and for every argument under no_grad.)"""
        return tuple([p is not None and p.requires_grad for p in self.parents])

    def explain(self, err: Exception, arrays: Sequence[np.ndarray]) -> Exception:
        """The error to raise when forward raised ValueError `err` (ops override this to name
        themselves and the shapes); by default `err` itself."""
        return err

    def release(self) -> None:
        """Drop what forward saved (after a backward without retain_graph)."""
        hold = getattr(self, "hold", None)
        if hold is not None:
            hold.release()
        self.saved_arrays = None

    @property
    def released(self) -> bool:
        """Were the saved arrays dropped (a backward without retain_graph ran)?"""
        return self.saved_arrays is None

    def tensor(self) -> TensorBase | None:
        """The output tensor, if the user still holds it (else None)."""
        return self.output()

    def label(self) -> str:
        """How the op reads in a rendered graph: its class name plus key attributes."""
        return type(self).__name__


_NUMERIC = ("f", "i", "u", "b")


def _observe(node, out, args, attributes):
    if state.anomaly:
        anomaly.check_forward(node, out, args)
    if state.recorder is not None:  # a tracing tl.compile (context.Trace)
        state.recorder.op(node, args, attributes, out)


def _as_output(cls, out):
    """(array, dtype kind) of a forward's result: numpy's 0-d scalars made arrays, non-numbers refused."""
    if isinstance(out, np.ndarray | np.generic) and out.dtype.kind in _NUMERIC:
        out = np.asarray(out)
        return out, out.dtype.kind
    what = type(out).__name__ + (f" of dtype {out.dtype}" if isinstance(out, np.ndarray) else "")
    raise TypeError(f"{cls.__name__}.forward must return a numeric numpy array, got {what}")
