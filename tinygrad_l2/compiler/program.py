"""A traced step: trace → IR (lower.py) → passes (passes.py, update.py) → numpy source
(emit.py) → one Python function, and the replay that calls it."""
from __future__ import annotations

import builtins
import itertools
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import random
from ..engine import _accumulate, topological_order
from ..function import TensorBase
from ..ops import row_indices
from ..tensor import Tensor
from . import effects, passes
from .emit import Emitter
from .keys import SHAPE_DTYPE, arrays_in_values, data_of, trace_key
from .lower import Refused, lower
from .naming import mark_penalties, name_values
from .symbolic import NotSymbolic
from .update import plan


class Program:
    """A traced step: the graph, the events, the IR and the generated functions."""

    def __init__(self, args, result, events, arg_names, scope=None, reachable=(), key=None, made=None,
                 buffers=()):
        """scope: {id(object): the name the step's code reads it by} (the optimizer `opt`);
        reachable: the objects the step's globals and closure hold; key: the arguments' trace
        key as they were before the step ran (keys.trace_key); made: {id(array): (op node,
        array)} for every op the step ran (context.Trace.made); buffers: the buffers of the
        modules called (running statistics), read each call like the parameters."""
        self.key = trace_key(args) if key is None else key
        self.outputs = tensors_in(result)
        self.events = events
        self.roots = self.outputs + [e[1] for e in events if e[0] == "backward"]
        given, self.made, buffer_ids = list(args), made or {}, {id(b) for _, b in buffers}
        self.eager_only = (_unsupported(self.roots, events, self.made)
                           or _derived_inputs(self.roots, given, events, self.made, buffer_ids))
        if self.eager_only:
            self.source = f"# not compiled: {self.eager_only}"
            return
        self.nodes = graph(self.roots, self.made)
        self.generators = effects.generators(self.nodes, events, reachable)
        self.params = [n.tensor() for n in self.nodes if n.is_leaf and n.requires_grad]
        named = {id(b): name for name, b in buffers}  # (the attribute's name: running_mean)
        self.buffers = [n.tensor() for n in self.nodes if n.is_leaf and id(n.tensor()) in buffer_ids]
        self.buffer_names = [named[id(b)] for b in self.buffers]
        self.tensors = self.params + self.buffers  # read each call: their shapes must not change
        self.param_shapes = list(map(SHAPE_DTYPE, self.tensors))
        build = lambda update=None: _build(self, args, arg_names, scope or {}, update)  # noqa: E731
        try:
            self.source, self.function, self.buffer_arrays, self.names, aranges = build()
        except Refused as reason:
            self.eager_only, self.source = str(reason), f"# not compiled: {reason}"
            return
        self.plain_source = self.source
        self.update = plan(events, self.params, self.nodes)
        try:
            if self.update is not None:  # the step most calls run: .source shows it
                self.source, self.updating, arrays, _, more = build(self.update)
                self.buffer_arrays += arrays
                aranges |= more
        except (NotSymbolic, Refused):  # the optimizer's update() reads a number, draws noise:
            self.update = None          # the program calls its step() instead
        positions = [i for i, a in enumerate(args) if isinstance(a, TensorBase | np.ndarray)]
        self.aranges = [(positions[k], np.arange(len(data_of(args[positions[k]])), dtype=dtype).tobytes())
                        for k, dtype in sorted(aranges)]
        self.buffer_ids = set(map(id, self.buffer_arrays))  # (the arrays stay alive: no id reuse)
        self.made = None  # (the traced arrays: not kept once the program is built)

    def fits(self, args):
        """Do these arguments and parameters have the shapes, dtypes (...) traced, and does each
        index a pass assumed to be arange(m) still hold exactly that (see algebra.py)?"""
        return (trace_key(args) == self.key
                and list(map(SHAPE_DTYPE, self.tensors)) == self.param_shapes
                and all(data_of(args[i]).tobytes() == arange for i, arange in self.aranges))

    def run(self, args):
        """The generated step: events in their traced order, gradients into `.grad` at the
        backward; the written SGD update when its conditions hold this call (update.py)."""
        arrays = [a._data if isinstance(a, TensorBase) else a for a in args
                  if isinstance(a, TensorBase | np.ndarray)]  # numbers are in the trace key
        if self.update is not None and self.update.ready():
            outputs = self.updating(*arrays, *self.update.arguments())
        else:
            outputs = self.function(*arrays)
        values = [Tensor._make(self._own(v), None) for v in outputs]
        return values[0] if len(values) == 1 else tuple(values)

    def failed_before_effects(self, error):
        """Was `error` raised by a line of the generated step before its first line with an
        effect (so that the step run eagerly instead starts from the same state)?"""
        trace = error.__traceback__
        while trace is not None:
            code = trace.tb_frame.f_code
            for fn in (self.function, getattr(self, "updating", None)):
                if fn is not None and code is fn.__code__:
                    return fn.effect_line is None or trace.tb_lineno < fn.effect_line
            trace = trace.tb_next
        return False

    def _own(self, value):
        """A returned array that may share memory with a buffer the next call overwrites, or
        that is one of the program's (read-only) constants, is copied (an array owning its
        memory shares none unless it is a buffer)."""
        value = np.asarray(value)
        if not value.flags.writeable:  # a tl.zeros(...) returned: eager's is the user's to write
            return value.copy()
        if value.base is None and id(value) not in self.buffer_ids:
            return value
        if any(np.may_share_memory(value, b) for b in self.buffer_arrays):
            return value.copy()
        return value


def _build(program, args, arg_names, scope, update):
    """(source, function, buffers, names, {(k, dtype)}: the k-th array input assumed to be
    arange(m)) of the step, with the optimizer's update written in when `update` is given."""
    with random.generators_kept(program.generators):  # running ops and updates again moves none
        ir = lower(program.nodes, program.events, args, program.outputs, program.made,
                   list(zip(program.buffer_names, program.buffers)))
        passes.simplify(ir)
        if update is not None:
            update.write(ir)
    buffers = passes.allocate(ir)
    names = name_values(ir, args, arg_names, program.nodes, program.outputs)
    mark_penalties(ir, program.nodes)
    for name, array in buffers.items():
        names.taken.add(name)
    emitter = Emitter(ir, names, scope)
    source, effect_line = _source(ir, emitter, names, update)
    namespace = dict(emitter.constants, np=np, _accumulate_grads=_accumulate_grads, _check=_check)
    namespace.update({f"P{i}": t for i, (t, _) in enumerate(ir.params)})
    namespace.update({f"B{i}": t for i, t in enumerate(program.buffers)})
    exec(builtins.compile(source, "<tl.compile>", "exec"), namespace)  # noqa: S102 - ours
    namespace["step"].effect_line = effect_line  # (see Program.failed_before_effects)
    named = {id(t): names[id(v)] for t, v in ir.params}
    aranges = {(k, v.dtype) for k, v in enumerate(ir.inputs) if any(v is a for a in ir.arange_inputs)}
    return source, namespace["step"], list(buffers.values()), named, aranges


def _source(ir, emitter, names, update):
    """The function: its arguments, a comment at each phase, the lines, the returned list."""
    arguments = [names[id(v)] for v in ir.inputs] + (["lr"] if update and update.arguments() else [])
    body, current, once, effect = [], None, [], None
    for k, (phase, line) in enumerate(emitter.lines(ir.instrs)):
        if phase == "constants":
            once.append(line[4:])
            continue
        if phase != current and phase in _TITLES:
            title = _LR_TITLE if update and update.arguments() and phase == "backward" else _TITLES[phase]
            title = update.title if phase == "update" else title
            body.append(f"    # {title}")
            current = phase
        if k == emitter.first_effect:
            effect = len(body)
        body.append(line)
    outputs = ", ".join(emitter.operand(v) for v in ir.outputs)
    once = ["# computed once, when the step was built: numbers that depend on no input", *once, ""] if once else []
    source = "\n".join([*once, f"def step({', '.join(arguments)}):", *body, f"    return [{outputs}]", ""])
    return source, None if effect is None else len(once) + 2 + effect  # (line numbers from 1)


_TITLES = {"parameters": "parameters", "forward": "forward",
           "backward": "backward (reverse order; a penalty's lines reach only the weights)",
           "update": ""}
_LR_TITLE = "backward from dloss = lr: every d<name> below is lr·∂loss/∂<name>"


def _check(ok, *arrays, error):
    """An op's check of its input values (ops.require), run on every call."""
    if not ok:
        raise error(*arrays)


def _accumulate_grads(pairs):
    """Into `.grad` as backward would: all shapes checked first, then added; an array the
    step made is handed over unless two parameters got it."""
    seen = set()
    for p, g in pairs:
        if p._requires_grad:
            g = np.asarray(g)
            _accumulate(p, g, owned=id(g) not in seen and g.base is None and g.flags.writeable)
            seen.add(id(g))


def _unsupported(roots, events, made):
    """Why this step cannot be replayed, or '' (then it is replayed)."""
    if not roots and events:
        return "the function returned no tensor and called no backward"
    if any(r._ctx is None and id(r._data) not in made for r in roots):
        return "a returned tensor was not computed by an op of the step"
    backwards = [e for e in events if e[0] == "backward"]
    if len(backwards) > 1:
        return "more than one backward() per call"
    for _, root, grad, retain in backwards:
        if grad is not None or retain or root.numel() != 1:
            return "backward() with an explicit gradient or retain_graph, or of a non-scalar"
    if any(e[0] == "step" and not hasattr(e[1], "param_groups") for e in events):
        return "an optimizer without parameter groups (PSO)"
    if any(e[0] == "step" and (e[2] or e[3]) for e in events):
        return "an optimizer's step() called with arguments (a closure: it evaluates the model again)"
    if any(n.retains_grad for r in roots for n in topological_order(r) if not n.is_leaf):
        return "an intermediate tensor called retain_grad() (replay makes no intermediate tensors)"
    return ""


def _derived_inputs(roots, given, events, made, buffer_ids):
    """Why replay would read stale inputs, or '': an argument that requires grad (its
    gradient belongs to each call's tensor), a constant tensor that is neither an argument, a
    module's buffer or frozen parameter (`buffer_ids`) nor made by an op of the step (`made`),
    an op after opt.step() reading a parameter (a replay reads the traced one), or an array an
    op holds (an index, a where() condition, a non-tensor operand) that is neither an argument,
    made by an op of the step, nor determined by shapes alone (row_indices)."""
    if any(isinstance(a, TensorBase) and a.requires_grad for a in given):
        return "an argument requires grad"
    arrays = {id(a._data if isinstance(a, TensorBase) else a) for a in given
              if isinstance(a, TensorBase | np.ndarray)}
    arrays |= {id(a) for a in arrays_in_values([a for a in given if not isinstance(a, TensorBase | np.ndarray)])}
    nodes = graph(roots, made)
    if _reads_after_step(nodes, events):
        return "an op computed after opt.step() reads a parameter or a view of one (the updated values)"
    for node in nodes:
        if node.is_leaf:
            data = node.tensor()._data
            if not node.requires_grad and id(data) not in arrays and id(data) not in made and (
                    id(node.tensor()) not in buffer_ids):
                return ("a constant tensor that is neither an argument, a module's buffer nor "
                        "computed by an op of the step (data the function captures by attribute, a "
                        "tensor made from new data) would be replayed with its traced values")
            continue
        held = [*getattr(node, "given", {}).values(), *getattr(node, "arguments", ())]
        index = getattr(node, "given", {}).get("index")  # x[...]: a list in it may come from data
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(part, np.ndarray) and part.dtype == bool for part in parts):
            return (f"the op {type(node).__name__} selects with a boolean mask: how many elements it "
                    f"keeps, so the shape of what follows, depends on the data")
        if any(isinstance(part, (list, tuple)) for part in parts):
            return (f"the op {type(node).__name__} was given a Python list or nested tuple (an index "
                    f"built from data, such as y.tolist()): pass a numpy array, read each call")
        for array in _arrays_in(held):
            if id(array) not in arrays and id(array) not in made and not (
                    array.ndim == 1 and array is row_indices(len(array))):
                return (f"an array the op {type(node).__name__} holds (an index, a where() condition, "
                        f"an operand) is not an argument and would be replayed with its traced values")
    return ""


def _reads_after_step(nodes, events):
    """Does an op that ran after the first opt.step() read a parameter's array, or a view of
    it?  (Ops that read values computed before the step read the same values in a replay.)"""
    first = next((i for i, e in enumerate(events) if e[0] == "step"), None)
    weights = [n.tensor()._data for n in nodes if n.is_leaf and n.requires_grad]
    return first is not None and any(
        np.may_share_memory(data, w) for n in nodes if getattr(n, "events_before", 0) > first
        for data in _arrays_in([getattr(a, "_data", a) for a in getattr(n, "arguments", ())]) for w in weights)


def _arrays_in(tree):
    if isinstance(tree, np.ndarray):
        yield tree
    elif isinstance(tree, (tuple, list)):
        for t in tree:
            yield from _arrays_in(t)


def tensors_in(result):
    if isinstance(result, TensorBase):
        return [result]
    if isinstance(result, (tuple, list)):
        return [r for r in result if isinstance(r, TensorBase)]
    return []


def graph(roots, made):
    """Every node of the roots' graphs, each after its inputs; a constant tensor an op of the
    step made (`made`: an argmax, an op under no_grad, a detached tensor) after that op."""
    seen, order = set(), []
    pending = [itertools.chain.from_iterable(topological_order(r, include_constants=True) for r in roots)]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
        elif id(node) not in seen:
            first = [p for p in made_by(node, made) if id(p) not in seen]
            if first:  # first the graphs of the ops that made what it reads
                pending[-1] = itertools.chain([node], pending[-1])
                pending.append(itertools.chain.from_iterable(
                    topological_order(p, include_constants=True) for p in first))
                continue
            seen.add(id(node))
            order.append(node)
    return order


def made_by(node, made):
    """The ops of the step that made a constant leaf's array, or the arrays an op holds (a
    where() condition): [] for arrays that are arguments or were not computed by the step."""
    if node.is_leaf:
        arrays = [] if node.requires_grad else [node.tensor()._data]
    else:
        arrays = _arrays_in([*getattr(node, "given", {}).values(), *getattr(node, "arguments", ())])
    found = [made[id(a)][0] for a in arrays if id(a) in made]
    return [p for p in found if p is not None and p is not node]  # (None: made from a number)


KEPT_TRACES = 8  # traces a step keeps (torch.compile's cache_size_limit); the least recently used goes


class Cached(NamedTuple):
    """One kept trace: its program, guards, returned structure, keyword names and the readers
    of the arrays it takes from the function's scope."""
    program: Program
    guards: Any
    template: Any
    keywords: tuple[str, ...]
    arrays: list[tuple[str, Callable[[], Any]]]
