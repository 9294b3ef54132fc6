"""Gradients that carry a graph: `grad(..., create_graph=True)` (torch.autograd.grad).

The sweep is the engine's (its topological order and consumer counts); at each node it runs
the op's own `backward` on `TensorArray`s (see `tensor_array`) instead of arrays, so every
gradient is itself a Tensor built from existing ops and can be differentiated again:
Hessian-vector products, gradient penalties, double backward.  There is no second set of
derivative formulas: the second derivative of an op is the first derivative of its backward.

A backward also reads `saved_arrays`, which must become graph-connected Tensors too.  An op
says what each one is (`Op.saved_from`: an input, the output, or a piecewise-constant array
such as a mask); an op that does not declare it (a custom `Function`) is accepted when each
saved array is exactly the array of an input tensor or of its output that is still alive.
Anything else — an array the forward derived, such as BatchNorm's x̂ — is refused by name,
never treated as a constant (that would be a silently wrong second derivative).

`Tensor.backward(create_graph=True)` is refused: `.grad` holds numpy arrays here.  Use
`grad(loss, params, create_graph=True)`, whose results are Tensors.
"""
from __future__ import annotations

import copy
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from . import context, engine
from .context import enable_grad
from .creation import cat
from .function import Leaf
from .gradcheck import gradcheck
from .ops.base import OUTPUT, PIECEWISE_CONSTANT
from .tensor import Tensor
from .tensor_array import CreateGraphError, TensorArray, running

__all__ = ["grad", "gradgradcheck", "CreateGraphError"]


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False) -> list[Any]:
    """d(outputs)/d(t) for each t in `inputs` (torch.autograd.grad), no `.grad` touched.

    create_graph=False: numpy arrays, from the engine's sweep (`engine.grad`).
    create_graph=True: Tensors that carry the graph of their computation (requires_grad where
    they depend on a tensor that requires grad), so they can be differentiated again:
        g, = grad(loss, [w], create_graph=True)      # a Tensor
        hv, = grad((g * v).sum(), [w])               # H·v, the Hessian-vector product
    `retain_graph` defaults to `create_graph` (PyTorch): the gradient's graph runs through the
    original graph's nodes, which keep their saved arrays.  One output (a Tensor, or a
    sequence of one)."""
    root, grad_output = _single_output(outputs, grad_outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    retain_graph = create_graph if retain_graph is None else retain_graph
    if not create_graph:
        return engine.grad(root, inputs, _array_of(grad_output), retain_graph=retain_graph,
                           allow_unused=allow_unused, materialize_grads=materialize_grads)
    if context.state.recorder is not None:  # tl.compile: gradients handed to Python mid-step
        context.record_unreplayable("tl.grad(create_graph=True) inside the step")
    allow_unused = engine.check_unused_arguments(allow_unused, materialize_grads)
    nodes = [engine.node_of(t) for t in inputs]
    with enable_grad():
        found = _sweep(engine.node_of(root), _seed(root, grad_output), set(nodes), retain_graph)
    engine.refuse_unused(nodes, found, allow_unused)
    if materialize_grads:
        return [found[n] if n in found else Tensor._make(np.zeros(n.out_shape, n.out_dtype), None)
                for n in nodes]
    return [found.get(n) for n in nodes]


def _single_output(outputs, grad_outputs):
    if isinstance(outputs, Tensor):
        return outputs, grad_outputs
    outputs = list(outputs)
    if len(outputs) != 1:
        raise ValueError(f"grad: one output is supported, got {len(outputs)}; sum them "
                         f"(weighted by their grad_outputs) into one scalar first")
    if isinstance(grad_outputs, (list, tuple)):
        grad_outputs = grad_outputs[0]
    return outputs[0], grad_outputs


def _array_of(grad_output):
    return grad_output._data if isinstance(grad_output, Tensor) else grad_output


def _seed(root, grad_output):
    """The gradient the sweep starts from, as a Tensor (one that requires grad stays in the
    graph: the result is then differentiable with respect to it too, as in PyTorch)."""
    array, _ = engine._seed(root, _array_of(grad_output))  # the engine's checks and messages
    if isinstance(grad_output, Tensor) and grad_output.requires_grad:
        return grad_output.astype(root.dtype)
    return Tensor._make(array, None)


def _sweep(start, seed, wanted, retain_graph):
    """The chain rule in the engine's order (`topological_order`: each node after all of its
    consumers), on Tensors: sum what reaches a node, then map it through the op's backward."""
    sums, found, ran = {start: seed}, {}, []
    for node in reversed(engine.topological_order(start)):
        g = sums.pop(node, None)
        if g is None:  # no path from the root to this node carried a gradient
            continue
        if node in wanted:
            found[node] = g
        if node.is_leaf:
            continue
        grads = _backward_on_tensors(node, g)
        ran.append(node)
        for i, (parent, parent_grad) in enumerate(zip(node.parents, grads)):
            if parent_grad is None or parent is None or not parent.requires_grad:
                continue
            parent_grad = _conform(node, i, parent_grad, parent)
            sums[parent] = parent_grad if parent not in sums else sums[parent] + parent_grad
    if not retain_graph:
        for node in ran:
            node.release()
    return found


def _backward_on_tensors(node, g):
    """The op's own backward, on a copy of its node whose saved arrays are Tensors."""
    if node.saved_arrays is None:
        engine._raise_released(node)
    clone = copy.copy(node)  # the node itself stays as it is (another sweep may read it)
    clone.saved_arrays = saved_as_tensors(node)
    running.op_name = type(node).__name__
    try:
        grads = clone.backward(TensorArray(g))
    finally:
        running.op_name = "an op"
    if type(grads) is not tuple:
        grads = tuple(grads) if isinstance(grads, list) else (grads,)
    if len(grads) != len(node.parents):
        raise engine._contract_error(node, f"returned {len(grads)} gradients for "
                                           f"{len(node.parents)} inputs")
    return grads


def _conform(node, i, grad, parent):
    """One gradient as a Tensor of its input's shape (unbroadcast) and dtype, or an error."""
    if isinstance(grad, TensorArray):
        grad = grad.tensor
    elif isinstance(grad, (np.ndarray, np.generic)) and grad.dtype.kind in "fiu":
        grad = Tensor._make(np.asarray(grad), None)  # a constant (it depends on nothing)
    else:
        raise engine._contract_error(node, f"returned a {type(grad).__name__} as the gradient of "
                                           f"input {i}; expected a numeric array")
    if grad.shape != parent.out_shape:
        if grad.shape != node.out_shape or not engine._broadcasts_to(parent.out_shape, grad.shape):
            raise engine._contract_error(node, f"returned a gradient of shape {grad.shape} for "
                                               f"input {i} of shape {parent.out_shape}")
        grad = engine.unbroadcast(grad, parent.out_shape)  # the same adjoint, on a Tensor
    return grad if grad.dtype == parent.out_dtype else grad.astype(parent.out_dtype)


# ---- saved arrays as graph-connected Tensors -----------------------------------------------

def saved_as_tensors(node: Any) -> tuple[Any, ...]:
    """`node.saved_arrays`, each as what backward may compute with: a TensorArray on the
    tensor it is (an input's, or the output's), a constant for a piecewise-constant array or
    an argument that is not a tensor, None for None.  Refuses what it cannot tell."""
    roles = getattr(type(node), "saved_from", None)
    if not node.saved_arrays and roles is not None:  # Mul by a scalar saves nothing
        return ()
    if roles is None:
        roles = _recognized_roles(node)
    elif len(roles) != len(node.saved_arrays):
        raise CreateGraphError(f"grad(create_graph=True): {type(node).__name__} declares "
                               f"{len(roles)} saved arrays (saved_from) but saved "
                               f"{len(node.saved_arrays)}")
    return tuple(_as_tensor(node, role, array) for role, array in zip(roles, node.saved_arrays))


def _as_tensor(node, role, array):
    if array is None:
        return None
    array = np.asarray(array)  # a 0-d result saved as a numpy scalar (Mul would take it for
    if role is PIECEWISE_CONSTANT:  # a Python number, cut from the graph): an array, as outputs are
        return array
    source = node if role is OUTPUT else node.parents[role]
    if source is None:  # an array passed as an argument, not as a tensor: a constant
        return array
    if array.shape != source.out_shape or array.dtype != source.out_dtype:
        raise CreateGraphError(f"grad(create_graph=True): {type(node).__name__}.saved_from says "
                               f"saved array {role!r} is a tensor of shape {source.out_shape}, "
                               f"but it has shape {array.shape} and dtype {array.dtype}")
    return TensorArray(_handle(source, array))


def _handle(node, array):
    """A Tensor with data `array` on graph node `node` (an op's output, or a leaf)."""
    tensor = node.tensor()
    if tensor is not None and tensor._data is array:
        return tensor
    if not node.requires_grad:
        return Tensor._make(array, None)
    if isinstance(node, Leaf):  # the leaf's data was replaced after the graph was built
        handle = Tensor._make(array, None)
        handle._requires_grad, handle._leaf = True, weakref.ref(node)
        return handle
    return Tensor._make(array, node)  # the user dropped the tensor: a new handle on its node


def _recognized_roles(node):
    """For an op without `saved_from`: each saved array must be the very array of one of its
    input tensors or of its output (alive), and it must keep no array in an attribute."""
    name = type(node).__name__
    sources = [(i, p) for i, p in enumerate(node.parents) if p is not None] + [(OUTPUT, node)]
    roles = []
    for k, array in enumerate(node.saved_arrays):
        role = next((r for r, p in sources if array is None or _is_array_of(p, array)), None)
        if role is None:
            raise CreateGraphError(
                f"grad(create_graph=True): {name}'s backward reads an array its forward derived "
                f"(saved array {k}, shape {np.shape(array)}: not the array of one of its input "
                f"tensors, alive, or of its output); no second derivative for it yet (an op "
                f"can declare what each saved array is: saved_from, see ops.base.Op)")
        roles.append(role)
    kept = [k for k, v in _attributes(node) if isinstance(v, (np.ndarray, np.generic))]
    if kept:
        raise CreateGraphError(f"grad(create_graph=True): {name} keeps an array in attribute "
                               f"{kept[0]!r}, which its backward may read; no second derivative "
                               f"through {name} (save inputs/outputs with save_for_backward)")
    return roles


def _is_array_of(node, array):
    tensor = node.tensor()
    return tensor is not None and tensor._data is array


def _attributes(node):
    names = {n for cls in type(node).__mro__ for n in getattr(cls, "__slots__", ())}
    names -= {"parents", "saved_arrays", "output", "hold", "__dict__", "__weakref__"}
    found = [(n, getattr(node, n, None)) for n in names]
    return found + list(getattr(node, "__dict__", {}).items())


def gradgradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Second derivatives of `fn` against finite differences of its first derivatives
    (torch.autograd.gradgradcheck): `gradcheck` on x ↦ ∂⟨v, fn(x)⟩/∂x for a fixed random v,
    all inputs' gradients flattened into one vector.  True or GradcheckError."""
    def first_derivatives(*xs):
        with enable_grad():  # gradcheck's finite differences run under no_grad
            out = fn(*xs)
            v = np.random.default_rng(seed + 1).standard_normal(out.shape)
            wanted = [x for x in xs if x.requires_grad]
            grads = grad((out * v).sum(), wanted, create_graph=True, materialize_grads=True)
            return _joined(grads)
    return gradcheck(first_derivatives, inputs, eps, atol, rtol, seed)


def _joined(tensors):
    return cat([t.reshape(-1) for t in tensors])
