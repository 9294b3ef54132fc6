"""The backward engine: topological order, the reverse sweep (the chain rule), unbroadcast,
and the checks on what each op's backward returns."""
from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from . import anomaly, context
from .context import collector_paused, state
from .function import Function, Leaf, TensorBase

_grad_mutex = threading.Lock()  # `.grad += g` from concurrent backward calls stays exact


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
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
    # a sum down to shape () is a numpy scalar (immutable): an array, as every gradient is
    return np.asarray(grad) if isinstance(grad, np.generic) else grad


def node_of(x: Any) -> Any:
    """A tensor's node in the graph (its op node, or its leaf node); a node stands for itself."""
    if isinstance(x, TensorBase):
        return x._node()
    if isinstance(x, Function | Leaf):
        return x
    raise TypeError(f"expected a Tensor or a graph node, got {type(x).__name__}")


def consumers_of(root, include_constants=False):
    """{node: how many nodes of `root`'s graph consume it} for every node that leads to
    `root` (iterative: a 100,000-op chain is fine).  Leaves that do not require grad (inputs,
    targets) are counted only with `include_constants`."""
    start = node_of(root)
    consumers, stack = {start: 0}, [start]
    while stack:
        for parent in stack.pop().parents:
            if parent is not None and (include_constants or parent.requires_grad):
                if parent in consumers:
                    consumers[parent] += 1
                else:
                    consumers[parent] = 1
                    stack.append(parent)
    return consumers


def topological_order(root: Any, include_constants: bool = False) -> list[Any]:
    """Every node that leads to `root` (op nodes and the leaves that require grad), each
    after all of its inputs.

    Kahn's algorithm: count, for each node, how many nodes of the graph consume it; then walk
    down from `root`, taking a node only when all of its consumers have been taken.  Reversed,
    that lists every node after its inputs.  The backward sweep walks the same way, so a
    tensor used more than once (`b = a + a; c = b * a`) has all its gradients summed before
    its op runs.  With `include_constants`, leaves that do not require grad are listed too,
    as the graph picture needs.
    """
    start = node_of(root)
    consumers, order, ready = consumers_of(start, include_constants), [], [start]
    while ready:
        node = ready.pop()
        order.append(node)
        for parent in node.parents:
            if parent is not None and (include_constants or parent.requires_grad):
                consumers[parent] -= 1
                if consumers[parent] == 0:
                    ready.append(parent)
    order.reverse()
    return order


def backward(root: TensorBase, grad: npt.ArrayLike | None = None, retain_graph: bool = False) -> None:
    """Reverse-mode sweep: d(root)/d(t) for every t in the graph, added to leaves' `.grad`.

    All or nothing: gradients are computed first and written to `.grad` (of the leaves that
    require grad and of tensors that called `retain_grad()`) only once every op's backward
    has succeeded.  Without `retain_graph`, each op's saved arrays are released as soon as its
    backward has run.
    """
    seed, owned = _seed(root, grad)
    if state.recorder is not None:  # tl.compile is tracing a step
        context.record("backward", root, grad, retain_graph)
    writes: list[tuple[Any, np.ndarray, bool]] = []
    with collector_paused():
        _sweep(node_of(root), seed, owned, retain_graph, writes.append)
    for tensor, g, _ in writes:  # all checked before any is written
        if g.shape != tensor._data.shape:
            raise RuntimeError(f"backward: a tensor's data was replaced by one of shape "
                               f"{tensor._data.shape} after the graph was built with shape "
                               f"{g.shape}; its gradient no longer fits (rebuild the graph)")
    with _grad_mutex:
        for tensor, g, owned in writes:
            if tensor._requires_grad:  # switched off since the graph was built: skip (PyTorch)
                _accumulate(tensor, g, owned)


def grad(root: TensorBase, inputs: Sequence[TensorBase], grad: npt.ArrayLike | None = None,
         retain_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> list[np.ndarray | None]:
    """d(root)/d(t) for each t in `inputs` (tensors, leaves or intermediates, or graph nodes
    from `topological_order`), returned as arrays instead of added to `.grad`
    (torch.autograd.grad).  An input root does not depend on is an error unless
    `allow_unused=True` (then its gradient is None) or `materialize_grads=True` (zeros), as in
    PyTorch.  No `.grad` is touched."""
    if state.recorder is not None:  # tl.compile: arrays handed to Python mid-step
        context.record_unreplayable("tl.grad() inside the step (its gradients go to Python)")
    allow_unused = check_unused_arguments(allow_unused, materialize_grads)
    nodes = [node_of(t) for t in inputs]
    wanted, found = set(nodes), {}

    def capture(write):
        node, g, owned = write
        if node in wanted:
            found[node] = g if owned else g.copy()
    seed, owned = _seed(root, grad)
    with collector_paused():
        _sweep(node_of(root), seed, owned, retain_graph, capture, by_node=True)
    refuse_unused(nodes, found, allow_unused)
    if materialize_grads:
        return [found[n] if n in found else np.zeros(n.out_shape, n.out_dtype) for n in nodes]
    return [found.get(n) for n in nodes]


def check_unused_arguments(allow_unused: bool | None, materialize_grads: bool) -> bool:
    """grad's allow_unused, defaulting to materialize_grads (PyTorch), checked against it."""
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    if materialize_grads and not allow_unused:
        raise ValueError("grad: materialize_grads=True requires allow_unused to be True or None")
    return allow_unused


def refuse_unused(nodes: Sequence[Any], found: dict, allow_unused: bool) -> None:
    """PyTorch's error for an input the root does not depend on, unless allowed."""
    unused = [i for i, n in enumerate(nodes) if n not in found]
    if unused and not allow_unused:
        raise RuntimeError(f"grad: the differentiated Tensor at index {unused[0]} appears to not "
                           f"have been used in the graph. Set allow_unused=True if this is the "
                           f"desired behavior (its gradient is then None)")


def _sweep(start, seed, seed_owned, retain_graph, emit, by_node=False):
    """The chain rule, node by node, each after all of its consumers (the order of
    `topological_order`, walked with the same consumer counts): sum the gradients arriving at
    a node (the multivariable chain rule), hand the sum to its `.grad` if it keeps one, then
    let its op map the sum to one gradient per input (a vector-Jacobian product)."""
    sums = GradientSums()
    sums.add(start, seed, seed_owned)
    check_anomaly = state.anomaly  # read once: it cannot change during the sweep
    waiting, ready = consumers_of(start), [start]
    while ready:
        node = ready.pop()
        g = sums.pop(node, None)
        if g is not None:  # else no path from root to this node carried a gradient
            owned = node in sums.owned and sums.taken(node)
            if by_node:
                emit((node, g, owned))
            elif node.is_leaf or node.retains_grad:
                emit((node.tensor(), g, owned))
            if not node.is_leaf:
                _backpropagate(node, g, sums, check_anomaly)
                if not retain_graph and node.saved_arrays:  # saved nothing: nothing to free
                    node.release()
        for parent in node.parents:  # an input is ready once all its consumers are done
            if parent is not None and parent.requires_grad:
                waiting[parent] -= 1
                if waiting[parent] == 0:
                    ready.append(parent)


class GradientSums(dict):
    """node -> the gradient arriving at it, summed over its consumers.

    Ownership decides whether a sum may be formed in place: we may write into an array only
    if nothing outside this sweep can see it.  That is an array this sweep made (a sum, a
    cast, an unbroadcast), or one a built-in op's backward made (`fresh_gradients`: it
    returns new arrays, `g` itself or views of `g`, nothing it keeps).  Never the incoming
    gradient an op passed through (`Add` returns `g` twice), a view of it, a broadcast view,
    or an array a custom op returned (it may keep it, or share it with the user).
    """

    def __init__(self):
        super().__init__()
        self.owned = set()

    def add(self, node, grad, owned):
        previous = self.get(node)
        if previous is None:
            self[node] = grad
            if owned:
                self.owned.add(node)
        elif node in self.owned:
            previous += grad
        elif owned:
            grad += previous
            self[node] = grad
            self.owned.add(node)
        else:
            self[node] = np.asarray(previous + grad)  # asarray: 0-d sums come back as scalars
            self.owned.add(node)

    def taken(self, node):
        """`node`'s sum was popped: may its taker write into it?"""
        if node in self.owned:
            self.owned.discard(node)
            return True
        return False


def _backpropagate(node, g, sums, check_anomaly):
    """Run `node`'s backward on `g` and add each input's gradient to `sums`, after checking
    the op's contract (see `Function`): how many gradients, each a numeric array of the
    input's shape (or the output's, for a broadcast input) and dtype."""
    if node.saved_arrays is None:
        _raise_released(node)
    if check_anomaly:
        anomaly.check_saved(node)
    grads = node.backward(g)
    parents = node.parents
    if type(grads) is not tuple:  # one input: a bare array (or a list: taken as a tuple)
        grads = tuple(grads) if isinstance(grads, list) else (grads,)
    if len(grads) != len(parents):
        raise _contract_error(node, f"returned {len(grads)} gradients for {len(parents)} inputs")
    trusted = node.fresh_gradients  # may we write into what backward returned?
    for i in range(len(parents)):
        parent, grad = parents[i], grads[i]
        if grad is None or parent is None or not parent.requires_grad:
            continue
        if type(grad) is np.ndarray and grad.shape == parent.out_shape and (
                grad.dtype is parent.out_dtype or grad.dtype == parent.out_dtype):
            fresh = trusted and grad is not g and (grad.base is None or (  # a new array, or a
                grad.flags.writeable and not np.may_share_memory(grad, g)))  # view not of g
        else:
            grad, fresh = _conform(node, i, grad, parent), True
        if check_anomaly:
            anomaly.check_backward(node, parent, grad)
        sums.add(parent, grad, fresh)


def _conform(node, i, grad, parent):
    """Bring one gradient to its input's shape and dtype, or raise naming the op."""
    if not isinstance(grad, np.ndarray | np.generic) or grad.dtype.kind not in "fiu":
        what = type(grad).__name__ + (f" of dtype {grad.dtype}" if hasattr(grad, "dtype") else "")
        raise _contract_error(node, f"returned a {what} as the gradient of input {i}; expected "
                                    f"a numeric numpy array")
    grad = np.asarray(grad)
    shape, out_shape = parent.out_shape, node.out_shape
    if grad.shape != shape:
        if grad.shape != out_shape or not _broadcasts_to(shape, out_shape):
            raise _contract_error(node, f"returned a gradient of shape {grad.shape} for input {i} "
                                        f"of shape {shape} (the output has shape {out_shape}); "
                                        f"expected the input's shape, or the output's when the "
                                        f"input was broadcast")
        grad = unbroadcast(grad, shape)
    if grad.dtype != parent.out_dtype:
        grad = grad.astype(parent.out_dtype)
    return np.array(grad, copy=True) if grad.base is not None else np.asarray(grad)


def _broadcasts_to(shape, target):
    """Does numpy broadcast `shape` to exactly `target`?"""
    offset = len(target) - len(shape)
    if offset < 0:
        return False
    for i in range(len(shape)):
        if shape[i] != 1 and shape[i] != target[offset + i]:
            return False
    return True


def _contract_error(node, what):
    return TypeError(f"backward: {type(node).__name__}.backward {what}")


def _seed(root, grad):
    """The gradient backward starts from, and whether we made it (then it may be written)."""
    if not isinstance(root, TensorBase):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root._requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no graph: "
                           "no input of the ops that made it had requires_grad=True (or it "
                           "was computed under no_grad)")
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(f"backward: grad can be implied only for a scalar output; this "
                               f"tensor has shape {root._data.shape}: pass grad= of that shape "
                               f"(the gradient of some scalar with respect to it)")
        return np.ones(root._data.shape, dtype=root._data.dtype), True
    grad = np.asarray(getattr(grad, "_data", grad))
    if grad.shape != root._data.shape:
        raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape "
                         f"{root._data.shape}; they must be equal")
    if grad.dtype.kind not in "fiu":
        raise TypeError(f"backward: grad must be a float array, got dtype {grad.dtype}")
    return grad.astype(root._data.dtype, copy=False), False


def _accumulate(tensor, g, owned):
    """tensor.grad += g, allocating only when tensor has no gradient yet (PyTorch semantics)."""
    current = tensor._grad
    if current is None:
        tensor._grad = g if owned else g.copy()
    elif current.shape == g.shape and current.flags.writeable:
        np.add(current, g, out=current)
    else:
        tensor._grad = np.asarray(current + g)


def _raise_released(node):
    raise RuntimeError(f"backward: trying to backward through {type(node).__name__} a second "
                       f"time; its saved arrays were freed after the first backward. Pass "
                       f"retain_graph=True to the first backward to keep them")
