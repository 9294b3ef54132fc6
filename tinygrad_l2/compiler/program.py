"""A traced step: its graph, its events (backward, zero_grad, step), whether it can be
replayed, and the replay itself."""
import numpy as np

from ..context import is_grad_enabled
from ..engine import _accumulate, topological_order
from ..function import TensorBase
from ..ops import row_indices
from ..tensor import Tensor
from .update import plan
from .writer import generate


def _signature(value):
    if isinstance(value, TensorBase):
        return ("tensor", value.shape, value.dtype, value.requires_grad)
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype)
    return ("value", type(value), value)


def _key(args):
    """What a trace depends on: each argument's kind, shape and dtype, which arguments are the
    same object (step(A, A) is traced differently from step(A, B)), and grad mode."""
    first = {}
    aliases = tuple(first.setdefault(id(a), i) for i, a in enumerate(args))
    return tuple(_signature(a) for a in args), aliases, is_grad_enabled()


class Program:
    """A traced step: the graph, the events, and the generated function."""

    def __init__(self, args, result, events, arg_names):
        self.key = _key(args)
        self.outputs = tensors_in(result)
        self.events = events
        self.roots = self.outputs + [e[1] for e in events if e[0] == "backward"]
        self.eager_only = _unsupported(self.roots, events) or _derived_inputs(self.roots, args)
        if self.eager_only:
            self.source = f"# not compiled: {self.eager_only}"
            return
        self.nodes = _graph(self.roots)
        self.params = [n.tensor() for n in self.nodes if n.is_leaf and n.requires_grad]
        self.param_shapes = [(p.shape, p.dtype) for p in self.params]
        self.source, self.function, arrays = generate(self, args, arg_names)
        self.buffers, self.buffer_arrays = {id(b) for b in arrays}, list(arrays)
        self.update = plan(events, self.params, self.nodes)
        self.plain_source = self.source
        if self.update is not None:  # the step most calls run: .source shows it
            self.source, self.updating, arrays = generate(self, args, arg_names, self.update)
            self.buffer_arrays += arrays

    def fits(self, args):
        return _key(args) == self.key and all(
            (p.shape, p.dtype) == s for p, s in zip(self.params, self.param_shapes))

    def run(self, args):
        """The events before the backward as recorded (zero_grad), then either the step with
        its SGD update written in (see update.py) or the forward and backward, the gradients
        written into `.grad`, and the remaining events as recorded."""
        arrays = [a._data if isinstance(a, TensorBase) else a for a in args]
        first = next(i for i, e in enumerate(self.events) if e[0] == "backward") if any(
            e[0] == "backward" for e in self.events) else len(self.events)
        for event in self.events[:first]:
            _replay_event(event, None, None)
        if self.update is not None and self.update.ready():
            outputs, _ = self.updating(*arrays, self.update.lr)
            for event in self.events[first:]:
                if event[0] == "schedule":  # after the update, as traced (see update.plan)
                    _replay_event(event, self, None)
        else:
            outputs, grads = self.function(*arrays)
            for event in self.events[first:]:
                _replay_event(event, self, grads)
        return _shape_like(self.outputs, [Tensor._make(self._own(v), None) for v in outputs])

    def _own(self, value):
        """A returned array that may share memory with a buffer the next call overwrites (a
        view such as z.T of a matmul's buffer) is copied."""
        value = np.asarray(value)
        if any(np.may_share_memory(value, b) for b in self.buffer_arrays):
            return value.copy()
        return value


def _replay_event(event, program, grads):
    if event[0] == "zero_grad":
        event[1].zero_grad() if event[2] is True else event[1].zero_grad(event[2])
    elif event[0] in ("step", "schedule"):
        event[1].step()
    else:
        _write_grads(program.params, grads, program.buffers)


def _unsupported(roots, events):
    """Why this step cannot be replayed, or '' (then it is replayed)."""
    if not roots:
        return "the function returned no tensor and called no backward"
    if not is_grad_enabled() or any(r._ctx is None for r in roots):
        return "grad mode was off, or a returned tensor was not computed through the graph"
    backwards = [e for e in events if e[0] == "backward"]
    if len(backwards) > 1:
        return "more than one backward() per call"
    for _, root, grad, retain in backwards:
        if grad is not None or retain or root.size != 1:
            return "backward() with an explicit gradient or retain_graph, or of a non-scalar"
    if any(e[0] == "step" and not hasattr(e[1], "param_groups") for e in events):
        return "an optimizer without parameter groups (PSO)"
    if any(n.retains_grad for r in roots for n in topological_order(r) if not n.is_leaf):
        return "an intermediate tensor called retain_grad() (replay makes no intermediate tensors)"
    steps = [i for i, e in enumerate(events) if e[0] == "step"]
    if steps and any(getattr(n, "events_before", 0) > steps[0] for r in roots
                     for n in topological_order(r) if not n.is_leaf):
        return "an op computed after opt.step() (it reads the updated parameters; replay computes every op first)"
    return ""


def _derived_inputs(roots, args):
    """Why replay would read stale inputs, or '': an argument that requires grad (its
    gradient belongs to each call's tensor), or an array or tensor equal to an argument but not
    the argument itself (made from it inside the function: replay would bake the traced one)."""
    if any(isinstance(a, TensorBase) and a.requires_grad for a in args):
        return "an argument requires grad"
    given = [a._data if isinstance(a, TensorBase) else a for a in args if isinstance(a, TensorBase | np.ndarray)]
    for node in _graph(roots):
        if node.is_leaf and not node.requires_grad and not any(node.tensor()._data is a for a in given):
            return ("a constant tensor that is not an argument (a mask such as x > 0, or data the "
                    "function captures) would be replayed with its traced values")
        if type(node).__name__ == "Where" and not any(node.condition is a for a in given):
            return "a where() condition that is not an argument would be replayed with its traced values"
        if type(node).__name__ == "Index" and not _replayable_index(node.index, given):
            return "an index array that is not an argument would be replayed with its traced values"
        if node.is_leaf:
            candidates = [] if node.requires_grad else [node.tensor()._data]
        else:
            index = getattr(node, "index", None) if type(node).__name__ == "Index" else None
            candidates = [p for p in (index if isinstance(index, tuple) else (index,)) if isinstance(p, np.ndarray)]
        for array in candidates:
            if not any(array is a for a in given) and any(
                    array.shape == a.shape and array.dtype.kind == a.dtype.kind and np.array_equal(array, a)
                    for a in given):
                return "a tensor or array made from an argument inside the function"
    return ""


def _replayable_index(index, given):
    """Index arrays replay correctly only if they are arguments or arange (shape-determined)."""
    for part in index if isinstance(index, tuple) else (index,):
        if isinstance(part, np.ndarray) and not any(part is a for a in given) and not (
                part.ndim == 1 and part is row_indices(len(part))):
            return False
    return True


def tensors_in(result):
    if isinstance(result, TensorBase):
        return [result]
    if isinstance(result, (tuple, list)):
        return [r for r in result if isinstance(r, TensorBase)]
    return []


def _shape_like(traced, values):
    return values[0] if len(traced) == 1 else tuple(values)


def _graph(roots):
    """Every node of the roots' graphs, each after its inputs."""
    seen, order = set(), []
    for root in roots:
        for node in topological_order(root, include_constants=True):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return order


def _write_grads(params, grads, buffers):
    """Into `.grad` as backward would: an array nothing else holds is handed over, anything
    else (a view, a reused buffer, an array two parameters got) is copied."""
    given = set(buffers)
    for p, g in zip(params, grads):
        if g is not None and p._requires_grad:
            g = np.asarray(g)
            _accumulate(p, g, owned=id(g) not in given and g.base is None)
            given.add(id(g))
