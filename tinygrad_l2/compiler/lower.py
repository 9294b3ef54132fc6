"""Trace → IR: each op node of the traced graph runs its own forward and backward on
symbolic arrays (symbolic.py), in the order eager ran them, between the recorded events.

The backward is the engine's sweep, on Values: the seed, each node after all its consumers,
the gradients arriving at a node summed, each op's backward, `unbroadcast` and the dtype cast
of the engine's `_conform`.  Nothing here knows any op: an op whose methods cannot run on
Values (they read a value into Python, or write into a plain array) becomes one `opaque`
instruction that replays its own methods on fresh nodes, as the engine would.
"""
from __future__ import annotations

import numpy as np

from ..engine import topological_order, unbroadcast
from ..function import Function
from .replay import Replayer, attributes as _attributes
from .symbolic import Instr, Recording, Value, _walk, recording



class IR:
    """A step as instructions: `instrs` in program order; the Values standing for the
    arguments (`inputs`), for the parameters (`params`: [(tensor, Value)]), for returned
    tensors (`outputs`); `grads`: {id(parameter tensor): its gradient Value}."""

    def __init__(self):
        self.instrs: list[Instr] = []
        self.inputs: list[Value] = []
        self.params: list[tuple[object, Value]] = []
        self.outputs: list[Value] = []
        self.grads: dict[int, Value] = {}
        self.value_of: dict = {}  # op node -> its output Value
        # id(gradient Value) -> (the Value, the node it is the gradient of); the Value is kept
        # so that its id is never another's
        self.grad_of: dict = {}
        self.decays: list = []  # (factor Value, weight Value): the L2 gradient as a decay
        self.data_grads: list = []  # (Value, weight Value): the rest of a decayed gradient
        self.state_names: list = []  # (Value, state key, weight Value): an optimizer's arrays
        self.arange_inputs: list = []  # input Values a pass assumed to be arange(m): checked each call
        self.buffer_names: dict = {}  # id(Value) -> the module buffer's name (running_mean)

    def grad_value(self, tensor):
        """The Value of `tensor`'s gradient handed to `.grad`, or None."""
        return self.grads.get(id(tensor))

    def add(self, instr, phase, node=None):
        instr.phase, instr.node = phase, node
        self.instrs.append(instr)
        return instr


def lower(nodes, events, args, outputs, made=None, buffers=()):
    """The IR of a traced step.  `nodes`: every node, inputs first; `events`: what the step
    called (("backward", root, ...), ("step", opt), ...); `args`: what the program takes each
    call (arguments, then arrays read from the step's scope); `outputs`: the returned tensors;
    `made`: {id(array): (op node, array)}: a constant leaf an op of the step made is that op's
    output, computed each call; `buffers`: [(name, tensor)] of module buffers (running
    statistics), read each call from their tensors."""
    ir, values, outputs_of = IR(), {}, {}
    for key, (producer, _) in (made or {}).items():
        outputs_of.setdefault(producer, []).append(key)  # (producer None: a number's array)
    given = _inputs(ir, args)
    for i, node in enumerate(n for n in nodes if n.is_leaf and n.requires_grad):
        tensor = node.tensor()
        value = Value(tensor._data.copy(), role="parameter")
        ir.add(Instr("input", ("parameter", i), out=value), "parameters")
        ir.params.append((tensor, value))
        values[node] = value
    made_here = _constant_leaves(ir, nodes, values, given, made or {}, buffers)
    ops = sorted((n for n in nodes if not n.is_leaf), key=lambda n: getattr(n, "ran", -1))  # as run
    backward = next((e for e in events if e[0] == "backward"), None)
    replicas = {}
    for position, event in enumerate([*events, None]):
        for node in [n for n in ops if getattr(n, "events_before", 0) == position]:
            replicas[node] = _forward(ir, node, values, given)
            for key in outputs_of.get(node, ()):  # an op that holds this array reads its Value
                given.setdefault(key, values[node])
            for leaf in made_here.get(node, ()):
                values[leaf] = values[node]
        if event is None:
            break
        if event is backward:
            _backward(ir, backward[1]._node(), values, replicas)
            indices = [i for i, (t, _) in enumerate(ir.params) if id(t) in ir.grads]
            ir.add(Instr("grads", indices, [ir.grads[id(ir.params[i][0])] for i in indices]), "events")
        else:
            ir.add(Instr("event", event), "events")
    ir.outputs = [values[t._node()] for t in outputs]
    ir.value_of = values
    return ir


def _constant_leaves(ir, nodes, values, given, made, buffers):
    """The Value of each leaf that requires no grad: an argument's, a module buffer's (read
    each call), else a constant; {op: [leaves]} for the arrays an op of the step made (their
    Value is that op's output, once it is recorded)."""
    made_here = {}
    for node in nodes:
        if not node.is_leaf or node.requires_grad:
            continue
        data = node.tensor()._data
        index = next((i for i, (_, b) in enumerate(buffers) if b is node.tensor()), None)
        if id(data) in given:
            values[node] = given[id(data)]
        elif index is not None:
            values[node] = Value(data.copy(), role="module buffer")
            ir.add(Instr("input", ("module buffer", index), out=values[node]), "parameters")
            ir.buffer_names[id(values[node])] = buffers[index][0]
        elif made.get(id(data), (None,))[0] is not None:
            made_here.setdefault(made[id(data)][0], []).append(node)
        else:  # an array of a config the key holds
            values[node] = _constant(ir, data)
    return made_here


def _constant(ir, array):
    value = Value(array.copy())
    ir.add(Instr("constant", None, out=value), "forward")
    return value


def _inputs(ir, args):
    """{id(array): Value} for each argument that is an array or a tensor (the first name wins
    for an array passed twice)."""
    given = {}
    items = [(a._data if hasattr(a, "_data") else a) for a in args]
    for i, array in enumerate(items):
        if isinstance(array, np.ndarray):
            value = Value(array.copy(), role="argument")
            ir.add(Instr("input", ("argument", i), out=value), "arguments")
            ir.inputs.append(value)
            given.setdefault(id(array), value)
    return given


def _substitute(thing, given):
    """`thing` with every array that is an argument replaced by its Value."""
    if isinstance(thing, np.ndarray):
        return given.get(id(thing), thing)
    if isinstance(thing, tuple):
        return tuple(_substitute(t, given) for t in thing)
    if isinstance(thing, list):
        return [_substitute(t, given) for t in thing]
    return thing


def _replica(node, given):
    """A fresh node of the op's own class with the traced node's attributes (arrays that
    are arguments replaced by their Values), ready to run forward and backward again."""
    replica = type(node).__new__(type(node))
    replica.saved_arrays, replica.parents = (), node.parents
    for key, value in _attributes(node).items():
        setattr(replica, key, _substitute(value, given))
    return replica


def _forward(ir, node, values, given):
    """Record `node`'s forward; returns the replica that holds what it saved."""
    arguments = [values[p] if p is not None else _substitute(a, given)
                 for p, a in zip(node.parents, node.arguments)]
    constants = _symbolic(node, arguments, given)
    if constants is None:  # the op replays its own methods (always correct)
        held = _walk(tuple(getattr(node, "given", {}).values()))
        if any(isinstance(a, np.ndarray) and id(a) in given for a in held):
            raise Refused(f"the op {type(node).__name__} has no symbolic form and holds an argument's "
                          f"array as a keyword argument (its own methods would replay the traced one)")
        return _opaque_forward(ir, node, values, arguments)
    replica = _replica(node, given)
    rec = Recording()
    with recording(rec):
        out = replica.forward(*arguments)
    if not same_constants(plain_arrays(rec.instrs), constants):
        return _opaque_forward(ir, node, values, arguments)  # it draws random numbers: not a constant
    for instr in rec.instrs:
        ir.add(instr, "forward", node)
    values[node] = out
    return replica


def _symbolic(node, arguments, given):
    """The plain arrays the op's forward used if its forward and backward both run on Values
    and use the same plain arrays when run twice (else it draws random numbers: its own
    methods must run every call), else None."""
    first = _trial(node, arguments, given)
    second = None if first is None else _trial(node, arguments, given)
    if second is None or not same_constants(first[1], second[1]):
        return None
    return first[0]


def _trial(node, arguments, given):
    """(the forward's plain arrays, the forward's and backward's) of a run on a replica of the
    op's own, recorded nowhere; None if it does not run on Values."""
    replica, trial = _replica(node, given), Recording()
    try:
        with recording(trial):
            out = replica.forward(*arguments)
            if not isinstance(out, Value):
                return None
            g = Value(np.ones(np.shape(out.example), out.example.dtype), role="argument")
            grads = replica.backward(g)
        grads = grads if isinstance(grads, (tuple, list)) else (grads,)
        ok = len(grads) == len(node.parents) and all(
            x is None or isinstance(x, (Value, np.ndarray, np.generic)) for x in grads)
        made = [x for x in grads if isinstance(x, np.ndarray | np.generic)]  # constant gradients
        return (plain_arrays(trial.instrs[:trial.instrs.index(out.instr) + 1]),
                plain_arrays(trial.instrs) + made) if ok else None
    except Exception:  # noqa: BLE001 - any failure means: no symbolic form
        return None


class Refused(Exception):
    """The step cannot be lowered (the reason says why); it runs eagerly."""


def plain_arrays(instrs):
    """The plain arrays a recorded forward used: made from shapes alone, the same each run
    (else the op draws random numbers and must run its own forward every call)."""
    return [a for instr in instrs for a in _walk((instr.args, instr.kwargs))
            if isinstance(a, np.ndarray | np.generic)]


def same_constants(first, second):
    return second is not None and len(first) == len(second) and all(
        a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        for a, b in zip(first, second))


def _opaque_forward(ir, node, values, arguments, given=None):
    replayer = Replayer(node)
    examples = [a.example if isinstance(a, Value) else a for a in arguments]
    out = Value(np.asarray(replayer.forward(*examples)))
    ir.add(Instr("opaque", replayer.forward, arguments, out=out), "forward", node)
    values[node] = out
    return replayer


def _record(ir, phase, node, fn, args):
    """One numpy call the engine makes (the sum of two gradients: a ufunc, a new array)."""
    rec = Recording()
    with recording(rec):
        out = rec.record("call", fn, args, {}, fn, fresh=isinstance(fn, np.ufunc))
    for instr in rec.instrs:
        ir.add(instr, phase, node)
    return out


def _backward(ir, root, values, replicas):
    """The engine's sweep (engine._sweep) on Values: seed, sums, each op's backward."""
    seed = Value(np.ones(root.out_shape, root.out_dtype))
    ir.add(Instr("seed", None, out=seed), "backward", root)
    sums = {root: seed}
    for node in reversed(topological_order(root)):
        g = sums.pop(node, None)
        if g is None:
            continue
        ir.grad_of.setdefault(id(g), (g, node))
        if node.is_leaf:
            ir.grads[id(node.tensor())] = g
            continue
        grads = _node_backward(ir, node, g, replicas[node])
        for parent, grad in zip(node.parents, grads):
            if grad is None or parent is None or not parent.requires_grad:
                continue
            grad = _conform(ir, node, grad, parent)
            previous = sums.get(parent)
            sums[parent] = grad if previous is None else _record(
                ir, "backward", parent, np.add, (previous, grad))


def _node_backward(ir, node, g, replica):
    if not isinstance(replica, Function):  # a Replayer: the op's own backward, opaque
        results = replica.backward(g.example)
        whole = Value(list(results))
        ir.add(Instr("opaque", replica.backward, (g,), out=whole), "backward", node)
        outs = []
        for i, result in enumerate(results):
            piece = None if result is None else Value(np.asarray(result))
            if piece is not None:
                ir.add(Instr("getitem", "getitem", (whole, i), out=piece), "backward", node)
            outs.append(piece)
        return outs
    rec = Recording()
    with recording(rec):
        grads = replica.backward(g)
    for instr in rec.instrs:
        ir.add(instr, "backward", node)
    if not isinstance(grads, tuple):
        grads = tuple(grads) if isinstance(grads, list) else (grads,)
    return grads


def _conform(ir, node, grad, parent):
    """The engine's `_conform` on a Value: a constant becomes an array, an output-shaped
    gradient of a broadcast input is summed back (unbroadcast), the dtype is the input's."""
    if not isinstance(grad, Value):  # a plain array the op made from shapes alone: a constant
        grad = Value(np.asarray(grad))
        ir.add(Instr("constant", None, out=grad), "backward", node)
    rec = Recording()
    with recording(rec):
        if grad.shape != parent.out_shape:
            grad = unbroadcast(grad, parent.out_shape)
        if grad.dtype != parent.out_dtype:
            grad = grad.astype(parent.out_dtype)
    for instr in rec.instrs:
        ir.add(instr, "backward", node)
    return grad
