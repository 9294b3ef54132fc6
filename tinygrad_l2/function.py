"""Function: the base of every differentiable op; `apply` runs forward and records the node."""
import weakref

import numpy as np

from . import anomaly
from .context import state
from .tensor import Tensor

# owner array id -> [array, lock count, was writeable]; an entry lives while some node saves it
_locks = {}


def lock_saved(arrays):
    """Make the memory behind saved arrays read-only while a graph needs it.

    A view is protected through the array that owns its memory (`W.T` saved by a matmul locks
    W's data).  Counted, so two graphs saving the same array unlock it only when both are done.
    """
    for array in arrays:
        owner = array if array.base is None else array.base
        if not isinstance(owner, np.ndarray):
            continue
        entry = _locks.get(id(owner))
        if entry is None:
            _locks[id(owner)] = [owner, 1, owner.flags.writeable]
            owner.flags.writeable = False
        else:
            entry[1] += 1


def unlock_saved(arrays):
    for array in arrays:
        owner = array if array.base is None else array.base
        entry = _locks.get(id(owner))
        if entry is None:
            continue
        entry[1] -= 1
        if entry[1] == 0:
            del _locks[id(owner)]
            if entry[2]:
                owner.flags.writeable = True


class Function:
    """One op: `forward` maps input arrays to an output array, `backward` maps the output's
    gradient to one gradient per input (None where `needs_input_grad` is False).

    An instance is the op's node in the graph (PyTorch's `ctx` and `grad_fn` in one).  Its
    `parents` are the nodes its inputs come from: the input's own op node for a computed
    tensor, the tensor itself for a leaf.  It keeps what `forward` saved for `backward` in
    `self.saved` (a tuple of arrays), the op's attributes in plain fields, the output's shape
    and dtype, and only a weak reference to its output tensor.  So an intermediate tensor's
    data lives exactly as long as the user or a saved array needs it (as in PyTorch), and a
    graph holds no reference cycles: reference counting alone frees it.

    `backward` may return the incoming gradient itself or a view of it, never modify it in
    place; broadcasting and dtype are reconciled by the engine (`engine.unbroadcast`).

    While a graph node holds saved arrays, they are read-only (see `lock_saved`): an in-place
    write to a tensor's data that a pending backward needs fails at the write, instead of
    silently changing the gradient.
    """

    parents = ()
    saved = ()
    released = False
    locked = False
    created_at = None  # the user's code line, recorded under detect_anomaly()
    _requires_grad = True  # a node exists only where some input requires grad
    _ctx = None  # a node is its own graph key (see engine.node_of)

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
        if state.anomaly:
            anomaly.check_forward(ctx, out, inputs)
        if state.grad_enabled:
            for t in inputs:
                if t._requires_grad:
                    ctx.parents = [t._ctx or t for t in inputs]  # op node, or the leaf itself
                    ctx.out_shape, ctx.out_dtype, ctx.scope = out.shape, out.dtype, state.scope
                    if ctx.saved:
                        lock_saved(ctx.saved)
                        ctx.locked = True
                    result = Tensor._make(out, ctx)
                    ctx.output = weakref.ref(result)
                    return result
        return Tensor._make(out, None)

    def release(self):
        """Drop what forward saved (after a backward without retain_graph)."""
        if self.locked:
            unlock_saved(self.saved)
            self.locked = False
        self.saved = None
        self.released = True

    def __del__(self):
        if self.locked:  # a graph dropped without backward gives its arrays back
            unlock_saved(self.saved)

    @property
    def needs_input_grad(self):
        """For each input: does it require grad? (backward may skip the others' gradients)"""
        return tuple(p._requires_grad for p in self.parents)

    def tensor(self):
        """The output tensor, if the user still holds it (else None).  `output` is the weak
        reference `apply` set: every node in a graph has one."""
        return self.output()

    def label(self):
        """How the op reads in a rendered graph: its class name plus key attributes."""
        return type(self).__name__
