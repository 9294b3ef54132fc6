"""The backward engine: topological order of the graph, the reverse sweep, and unbroadcast."""
import numpy as np

from . import anomaly
from .context import state
from .tensor import Tensor


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: the adjoint of numpy broadcasting.

    Broadcasting an operand of shape `shape` to the output's shape (1) prepends axes and
    (2) repeats size-1 axes.  Each copy of an element receives its own gradient, and the
    element's gradient is the sum of its copies', so we sum over the prepended axes and over
    every axis where `shape` has a 1 the output stretched:

        shape (3, 1) broadcast to (2, 3, 4):  grad.sum(axis=0).sum(axis=1, keepdims=True)
    """
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    if leading:
        grad = grad.sum(axis=tuple(range(leading)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def node_of(t):
    """A tensor's node in the graph: the op that made it, or the tensor itself for a leaf."""
    return t if t._ctx is None else t._ctx


def topological_order(root, include_constants=False):
    """Every node that leads to `root` (op nodes and leaf tensors that require grad), each
    after all of its inputs.

    Iterative depth-first post-order (no recursion, so a 100,000-op chain is fine): a node is
    emitted only once all of its inputs have been, so walking the list backwards visits every
    node after all the nodes that consume it — the order reverse mode needs when a tensor is
    used more than once (`b = a + a; c = b * a`).  With `include_constants`, leaves that do
    not require grad (inputs, constants) are listed too, as the graph picture needs.
    """
    start = node_of(root)
    order, visited = [], set()
    stack = [(start, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        if type(node) is not Tensor:
            for parent in node.parents:
                if (include_constants or parent._requires_grad) and parent not in visited:
                    stack.append((parent, False))
    return order


def backward(root, grad=None, retain_graph=False):
    """Reverse-mode sweep: d(root)/d(t) for every t in the graph, written to leaves' `.grad`.

    For each node, latest first, the gradients arriving from its consumers are summed once
    (the multivariable chain rule), then the node's op maps that sum to its inputs'
    gradients (a vector-Jacobian product).  Gradients accumulate into `.grad` of leaves that
    require grad and of tensors that called `retain_grad()`; every other gradient lives only
    in this function's dict.  Without `retain_graph`, each op's saved arrays are released as
    soon as its backward has run.
    """
    _sweep(root, _seed(root, grad), retain_graph, capture=None, seed_owned=grad is None)


def grad(root, inputs, grad=None, retain_graph=False):
    """d(root)/d(t) for each tensor t in `inputs` (leaves or intermediates, or graph nodes from
    `topological_order`), returned as arrays instead of accumulated into `.grad`
    (torch.autograd.grad); None where root does not depend on t.  No `.grad` is touched."""
    nodes = [node_of(t) for t in inputs]
    captured = _sweep(root, _seed(root, grad), retain_graph, capture=set(nodes))
    return [captured.get(n) for n in nodes]


def _sweep(root, seed, retain_graph, capture, seed_owned=False):
    start = node_of(root)
    grads = {start: seed}
    owned = {start} if seed_owned else set()  # entries in `grads` this sweep allocated
    captured = {}
    check_anomaly = state.anomaly  # read once: it cannot change during the sweep
    for node in reversed(topological_order(start)):
        g = grads.pop(node, None)
        if g is None:
            continue
        leaf = type(node) is Tensor
        if capture is not None:
            if node in capture:
                captured[node] = g if node in owned else g.copy()
        elif leaf:
            _accumulate(node, g, node in owned)
        else:
            output = node.tensor()
            if output is not None and output._retains_grad:
                _accumulate(output, g, node in owned)
        if leaf:
            continue
        ctx = node
        if ctx.released:
            _raise_released(ctx)
        input_grads = ctx.backward(g)
        for parent, pg in zip(ctx.parents, input_grads):
            if pg is None or not parent._requires_grad:
                continue
            if type(pg) is not np.ndarray:  # numpy returns scalars from 0-d arithmetic
                pg = np.asarray(pg)
            if type(parent) is Tensor:
                shape, dtype = parent._data.shape, parent._data.dtype
            else:
                shape, dtype = parent.out_shape, parent.out_dtype
            if pg.shape != shape:
                pg = unbroadcast(pg, shape)
            if pg.dtype != dtype:
                pg = pg.astype(dtype)
            if check_anomaly:
                anomaly.check_backward(ctx, parent, pg)
            # An array this sweep may write into: not the incoming gradient nor a view of it
            # (ops return fresh arrays, g itself, or views of g — never saved arrays), and not
            # a broadcast view (read-only: one element stands for many).
            fresh = pg is not g and pg.flags.writeable and (
                pg.base is None or not np.may_share_memory(pg, g))
            previous = grads.get(parent)
            if previous is None:
                grads[parent] = pg
                if fresh:
                    owned.add(parent)
            elif parent in owned:
                previous += pg
            elif fresh:
                pg += previous
                grads[parent] = pg
                owned.add(parent)
            else:
                grads[parent] = np.asarray(previous + pg)  # asarray: 0-d sums come back as scalars
                owned.add(parent)
        if not retain_graph:
            ctx.release()
    return captured


def _seed(root, grad):
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root._requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no graph: "
                           "no input of the ops that made it had requires_grad=True (or it "
                           "was computed under no_grad)")
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(f"backward: grad can be implied only for a scalar output; this "
                               f"tensor has shape {root.shape}: pass grad= of that shape (the "
                               f"gradient of some scalar with respect to it)")
        return np.ones(root.shape, dtype=root.dtype)
    grad = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
    if grad.shape != root.shape:
        raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape "
                         f"{root.shape}; they must be equal")
    if grad.dtype.kind not in "fiu":
        raise TypeError(f"backward: grad must be a float array, got dtype {grad.dtype}")
    return grad.astype(root.dtype, copy=False)


def _accumulate(tensor, g, owned):
    """tensor.grad += g, allocating only when tensor has no gradient yet (PyTorch semantics)."""
    if tensor.grad is None:
        tensor.grad = g if owned else g.copy()
    elif tensor.grad.shape == g.shape and tensor.grad.flags.writeable and tensor.grad.dtype == g.dtype:
        np.add(tensor.grad, g, out=tensor.grad)
    else:
        tensor.grad = np.asarray(tensor.grad + g)


def _raise_released(ctx):
    raise RuntimeError(f"backward: trying to backward through {type(ctx).__name__} a second "
                       f"time; its saved arrays were freed after the first backward. Pass "
                       f"retain_graph=True to the first backward to keep them")
