"""Function: the base of every differentiable op; `apply` runs forward and records the node."""
import numpy as np

from .context import state
from .tensor import Tensor


class Function:
    """One op: `forward` maps input arrays to an output array, `backward` maps the output's
    gradient to one gradient per input (None where `needs_input_grad` is False).

    An instance is the op's node in the graph (PyTorch's `ctx`): it keeps the input tensors
    (`parents`), whatever `forward` saved for `backward`, and the op's attributes (axis, ...).
    What backward needs goes in `self.saved` (a tuple of arrays), the op's attributes in plain
    fields.  It never refers to its output tensor, so a graph holds no reference cycles and is
    freed by reference counting alone.

    `backward` may return the incoming gradient itself or a view of it, never modify it in
    place; broadcasting and dtype are reconciled by the engine (`engine.unbroadcast`).
    """

    parents = ()
    saved_versions = ()
    saved = ()
    released = False

    def forward(self, *arrays):
        raise TypeError(f"{type(self).__name__} defines no forward")  # pragma: no cover

    def backward(self, grad):
        raise TypeError(f"{type(self).__name__} is not differentiable")  # pragma: no cover

    @classmethod
    def apply(cls, *inputs, **attrs):
        """Run the op on Tensors; build a graph node when some input requires grad."""
        ctx = cls.__new__(cls)
        if attrs:
            ctx.__dict__.update(attrs)
        out = ctx.forward(*[t._data for t in inputs])
        if type(out) is not np.ndarray:  # numpy returns scalars from 0-d arithmetic
            out = np.asarray(out)
        if state.grad_enabled:
            for t in inputs:
                if t._requires_grad:
                    ctx.parents = inputs
                    ctx.saved_versions = [p._version for p in inputs]
                    return Tensor._make(out, ctx)
        return Tensor._make(out, None)

    @property
    def needs_input_grad(self):
        """For each input: does it require grad? (backward may skip the others' gradients)"""
        return tuple(p._requires_grad for p in self.parents)

    def label(self):
        """How the op reads in a rendered graph: its class name plus key attributes."""
        return type(self).__name__
