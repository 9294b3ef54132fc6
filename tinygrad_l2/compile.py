"""tl.compile: trace a training step once, then replay its forward and backward as one
straight-line numpy function — the backprop code the engine writes for you.

    step = tl.compile(train_step)        # or @tl.compile; tl.compile(fn, check=N)
    loss = step(x, y)                    # Tensors or numpy arrays
    print(step.source)                   # the generated numpy code, forward then backward

How it works.  The first call runs `train_step` eagerly while recording what it does: the
graph it builds, each `backward()`, each `opt.zero_grad()` / `model.zero_grad()` and
`opt.step()`.  From the graph it writes one Python function: the forward (one line per op,
variables named after the tensors: W1, Z1, A1, ...), then the backward in reverse order
(dZ1, dW1, ...), the lines of a penalty term (a scalar made of parameters alone, such as L2)
marked as such.  Later calls run that function on the new arguments, write the gradients into
`.grad` exactly as backward would, and call the optimizers' own `zero_grad`/`step` at the
recorded places — so parameters, `.grad` and optimizer state are as eager leaves them, a
learning-rate schedule is honoured, and eager and compiled steps mix freely.

What replay cannot see, documented: Python control flow that depends on data (the traced path
is replayed), a model that starts using other parameters (the traced ones are replayed), and
Python side effects other than the calls above (assigning `.grad` by hand, printing).  The
tensors a replay returns hold the results but no graph.  A step whose graph holds a constant
that is not an argument (a mask such as `x > 0`, data captured by closure), a `where`
condition or an index array computed from data, runs eagerly every time instead of replaying
stale values.  `check=N` runs the eager function beside the
first N replays (from the same state) and raises `CompileCheckError` naming the first tensor
that differs.  A new argument shape or dtype, a different grad mode or a parameter whose shape
changed makes it trace again; a step it cannot replay (a PSO step, backward with an explicit
gradient or retain_graph) runs eagerly every time.  Not re-entrant: a call from a second
thread while one runs is refused with an error.
"""
import builtins
import functools
import threading

import numpy as np

from .context import is_grad_enabled, state
from .engine import _accumulate, topological_order, unbroadcast
from .function import Constant, TensorBase
from .ops import row_indices, sigmoid
from .tensor import Tensor


class CompileCheckError(AssertionError):
    """check=N: the replayed step and the eager step disagree."""


def compile(fn=None, *, check=0):  # noqa: A001 - PyTorch's name (torch.compile)
    """Trace `fn` on its first call and replay it afterwards (see the module docstring)."""
    if fn is None:
        return lambda f: compile(f, check=check)
    if not callable(fn):
        raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
    if not isinstance(check, int) or check < 0:
        raise ValueError(f"compile: check must be an integer >= 0, got {check!r}")
    return CompiledStep(fn, check)


class CompiledStep:
    """The compiled function: call it like `fn`; `.source` is the generated code, `.graph`
    the traced graph's root (draw it with `tl.draw_dot`), `.traces` how often it traced."""

    def __init__(self, fn, check):
        self.fn, self.checks_left, self.program, self.traces = fn, check, None, 0
        self._busy = threading.Lock()
        functools.update_wrapper(self, fn)

    @property
    def source(self):
        return None if self.program is None else self.program.source

    @property
    def graph(self):
        return None if self.program is None else self.program.roots[0]

    def __call__(self, *args):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"compile: {self.fn.__name__} is already running in another thread; "
                               f"a compiled step is not re-entrant (it reuses its buffers)")
        try:
            args = tuple(_as_input(a) for a in args)
            if self.program is not None and self.program.eager_only:
                return self.fn(*args)  # a step replay cannot reproduce: always eager
            if self.program is None or not self.program.fits(args):
                return self._trace(args)
            if self.checks_left:
                self.checks_left -= 1
                return self._checked(args)
            return self.program.run(args)
        finally:
            self._busy.release()

    def _trace(self, args):
        events, previous = [], (state.recorder, state.hooks)
        state.recorder, state.hooks = events, True
        try:
            result = self.fn(*args)
        finally:
            state.recorder, state.hooks = previous[0], previous[1] or state.anomaly
        self.traces += 1
        self.program = Program(args, result, events, _parameter_names(self.fn, len(args)))
        return result

    def _checked(self, args):
        """Replay, then run eagerly from the same state; compare everything observable."""
        before = _snapshot(self.program)
        replayed = self.program.run(args)
        after = _snapshot(self.program)
        _restore(self.program, before)
        eager = self.fn(*args)
        for name, got, want in _compare(self.program, replayed, eager, after):
            raise CompileCheckError(
                f"compile(check=...): {name} differs between the replayed and the eager step "
                f"(max |difference| {np.max(np.abs(got - want), initial=0):.3g}); something the "
                f"trace cannot see changed: data-dependent control flow, or an array captured "
                f"by closure that is not an argument")
        return eager


def _as_input(value):
    if isinstance(value, TensorBase) or not isinstance(value, np.ndarray):
        return value
    return Tensor(value) if value.dtype.kind == "f" else value


def _signature(value):
    if isinstance(value, TensorBase):
        return ("tensor", value.shape, value.dtype, value.requires_grad)
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype)
    return ("value", type(value), value)


class Program:
    """A traced step: the graph, the events, and the generated function."""

    def __init__(self, args, result, events, arg_names):
        self.key = (tuple(_signature(a) for a in args), is_grad_enabled())
        self.outputs = _tensors(result)
        self.events = events
        self.roots = self.outputs + [e[1] for e in events if e[0] == "backward"]
        self.eager_only = _unsupported(self.roots, events) or _derived_inputs(self.roots, args)
        if self.eager_only:
            self.source = f"# not compiled: {self.eager_only}"
            return
        self.nodes = _graph(self.roots)
        self.params = [n.tensor() for n in self.nodes if n.is_leaf and n.requires_grad]
        self.param_shapes = [(p.shape, p.dtype) for p in self.params]
        self.source, self.function = _generate(self, args, arg_names)

    def fits(self, args):
        key = (tuple(_signature(a) for a in args), is_grad_enabled())
        return key == self.key and all(
            (p.shape, p.dtype) == s for p, s in zip(self.params, self.param_shapes))

    def run(self, args):
        values = self.function(*[a._data if isinstance(a, TensorBase) else a for a in args])
        outputs, grads = values
        for event in self.events:
            if event[0] == "zero_grad":
                event[1].zero_grad() if event[2] is True else event[1].zero_grad(event[2])
            elif event[0] == "step":
                event[1].step()
            else:
                _write_grads(self.params, grads, self.buffers)
        return _shape_like(self.outputs, [Tensor._make(np.asarray(v), None) for v in outputs])


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


def _tensors(result):
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


# ---- checking ------------------------------------------------------------------------------

def _optimizers(program):
    return [e[1] for e in program.events if e[0] == "step"]


def _snapshot(program):
    params = [(p, p._data.copy(), None if p._grad is None else p._grad.copy()) for p in program.params]
    states = [(o, {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                   for k, s in o.state.items()}) for o in _optimizers(program)]
    return params, states


def _restore(program, snapshot):
    params, states = snapshot
    for p, data, grad in params:
        p.data, p._grad = data.copy(), None if grad is None else grad.copy()
    for optimizer, saved in states:
        optimizer.state = {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                           for k, s in saved.items()}


def _compare(program, replayed, eager, after):
    """(name, replayed value, eager value) for each observable that differs."""
    names = program.names
    for i, (got, want) in enumerate(zip(_tensors(replayed), _tensors(eager))):
        if not np.allclose(got.data, want.data, rtol=1e-6, atol=1e-12, equal_nan=True):
            yield f"returned tensor {i}", got.data, want.data
    for (p, data, grad) in after[0]:
        name = names.get(id(p), "a parameter")
        if not np.allclose(data, p.data, rtol=1e-6, atol=1e-12):
            yield f"parameter {name}", data, p.data
        if (grad is None) != (p.grad is None) or (
                grad is not None and not np.allclose(grad, p.grad, rtol=1e-6, atol=1e-12)):
            yield f"gradient of {name}", np.asarray(grad if grad is not None else 0.0), \
                np.asarray(p.grad if p.grad is not None else 0.0)


# ---- code generation ---------------------------------------------------------------------------

def _parameter_names(fn, n):
    """The function's own parameter names (X, y, ...) for the generated code."""
    import inspect
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return [(names[i] if i < len(names) and _identifier(names[i]) else f"arg{i}") for i in range(n)]


def _generate(program, args, arg_names):
    """The source of `step(*args) -> (outputs, parameter gradients)` and the function."""
    writer = _Writer(program, args, arg_names)
    source = writer.source()
    namespace = dict(writer.constants, np=np, unbroadcast=unbroadcast, sigmoid=sigmoid,
                     _scatter=_scatter, _place=_place)
    exec(builtins.compile(source, "<tl.compile>", "exec"), namespace)  # noqa: S102 - ours
    program.names = {id(p): writer.name[id(n)] for n in program.nodes if n.is_leaf
                     for p in [n.tensor()]}
    program.buffers = {id(b) for b in writer.buffers.values()}
    return source, namespace["step"]


class _Writer:
    """Names every node and writes its forward and backward lines."""

    def __init__(self, program, args, arg_names):
        self.program, self.args, self.given_names = program, args, arg_names
        self.name, self.constants, self.layer, self.buffers = {}, {}, 0, {}
        self.penalty = _penalty_nodes(program.nodes)
        self.uses = _uses(program)
        self.fused = _vdot_pairs(program.nodes, self.uses)  # Sum node id -> its Pow(2) node
        self.skipped = {id(pow_node) for pow_node in self.fused.values()}
        self._name_inputs(args)

    def _name_inputs(self, args):
        tensors = {id(a): i for i, a in enumerate(args) if isinstance(a, TensorBase)}
        self.arg_names = [_identifier(getattr(a, "name", None)) or self.given_names[i]
                          for i, a in enumerate(args)]
        self.tensor_args = tensors
        self.array_args = {id(a): self.arg_names[i] for i, a in enumerate(args) if isinstance(a, np.ndarray)}
        weights = 0
        for node in self.program.nodes:
            t = node.tensor() if node.is_leaf else None
            if t is None:
                continue
            if id(t) in tensors:
                self.name[id(node)] = self.arg_names[tensors[id(t)]]
            elif node.requires_grad:
                weights += t.ndim >= 2
                self.name[id(node)] = _identifier(t.name) or (f"W{weights}" if t.ndim >= 2 else f"b{weights}")
            else:
                self.name[id(node)] = self.constant(t, f"C{len(self.constants)}")

    def matmul(self, a, b, shape, dtype):
        """a @ b into a buffer allocated once (no new array, no page faults, every call)."""
        name = f"BUF{len(self.buffers)}"
        self.buffers[name] = np.empty(shape, dtype=dtype)
        self.constants[name] = self.buffers[name]
        return f"np.matmul({a}, {b}, out={name})"

    def constant(self, value, name):
        self.constants[name] = value
        return f"{name}._data" if isinstance(value, TensorBase) else name

    def source(self):
        forward, backward = [], []
        count = 0
        for node in self.program.nodes:
            if node.is_leaf:
                continue
            count += 1
            self.name[id(node)] = self._op_name(node, count)
            if id(node) in self.skipped:
                continue  # a square only a sum reads: the sum takes it as one dot product
            forward.append(self._line(node, self._forward(node)))
        grads = self._backward_lines(backward)
        params = [self.name[id(n)] for n in self.program.nodes if n.is_leaf and n.requires_grad]
        reads = [f"    {self.name[id(n)]} = P{i}._data" for i, n in enumerate(
            n for n in self.program.nodes if n.is_leaf and n.requires_grad)]
        for i, n in enumerate(n for n in self.program.nodes if n.is_leaf and n.requires_grad):
            self.constants[f"P{i}"] = n.tensor()
        outputs = ", ".join(self.name[id(t._node())] for t in self.program.outputs)
        grad_list = ", ".join(grads.get(p, "None") for p in params)
        lines = [f"def step({', '.join(self.arg_names)}):", "    # parameters", *reads,
                 "    # forward", *forward, "    # backward (reverse order; a penalty's lines reach only the weights)",
                 *backward, f"    return [{outputs}], [{grad_list}]", ""]
        return "\n".join(lines)

    def _op_name(self, node, count):
        t = node.tensor()
        named = _identifier(t.name) if t is not None else None
        if named:
            return named
        if len(self.program.outputs) == 1 and self.program.outputs[0]._node() is node:
            return "loss"
        kind = type(node).__name__
        if kind == "MatMul":
            self.layer += 1
            return f"M{self.layer}"
        if kind == "Add" and type(node.parents[0]).__name__ == "MatMul":
            return f"Z{self.layer}"
        if kind in ("ReLU", "Sigmoid", "Tanh"):
            return f"A{self.layer}"
        if kind == "Transpose" and node.parents[0] is not None and node.parents[0].is_leaf:
            return self.name[id(node.parents[0])] + "_T"
        return f"t{count}"

    def _forward(self, node):
        """The node's forward expression, with the exact rewrites: Σw² as np.vdot(w, w) (no W²
        array), and a bias add or ReLU written into its input's array when nothing else reads
        that array (one fewer allocation; the input's name then holds the new values)."""
        if id(node) in self.fused:
            w = self.name[id(self.fused[id(node)].parents[0])]
            return f"np.vdot({w}, {w})  # = Σ {w}²: one dot product, no {w}² array"
        kind, parents = type(node).__name__, node.parents
        source = parents[0]
        if kind in ("Add", "ReLU") and self._reusable(source, node):
            x = self.name[id(source)]
            if kind == "ReLU":
                return f"np.maximum({x}, 0, out={x})  # in place: nothing else reads {x}"
            if parents[1] is not None and node.out_shape == source.out_shape:
                return f"np.add({x}, {self.name[id(parents[1])]}, out={x})  # in place: nothing else reads {x}"
        return _forward(self, node)

    def _reusable(self, source, consumer):
        """May `consumer` overwrite `source`'s array?  Only a new array made by an op whose
        backward does not read its own output, read by this consumer alone, not returned."""
        return (source is not None and not source.is_leaf
                and type(source).__name__ in ("MatMul", "Add", "Sub", "Mul")
                and self.uses.get(id(source)) == 1 and source.out_dtype == consumer.out_dtype
                and len(source.out_shape) > 0  # 0-d results are numpy scalars: immutable
                and not any(t._node() is consumer for t in self.program.outputs)  # returned: new
                and (type(source).__name__ != "MatMul" or len(source.out_shape) == 2))

    def _line(self, node, code):
        note = "  # penalty term" if id(node) in self.penalty else ""
        return f"    {self.name[id(node)]} = {code}{note}"

    def _backward_lines(self, lines):
        """d<name> for every node, consumers first; returns {param name: grad variable}."""
        program = self.program
        root = [e[1] for e in program.events if e[0] == "backward"]
        if not root:
            return {}
        root_node = root[0]._node()
        has_grad, fresh = {id(root_node)}, set()
        lines.append(f"    d{self.name[id(root_node)]} = np.ones((), dtype=np.{root_node.out_dtype.name})")
        for node in reversed(topological_order(root_node)):
            if node.is_leaf or id(node) not in has_grad:
                continue
            g = "d" + self.name[id(node)]
            self.pending = None
            if id(node) in self.fused:  # d(Σw²)/dw = 2w: straight to the weight
                w = self.fused[id(node)].parents[0]
                pairs = [(w, f"{self.name[id(w)]} * (2 * {g})")]
            else:
                pairs = _backward(self, node, g)
            if self.pending:
                lines.append(self.pending)
            for i, (parent, expr) in enumerate(pairs):
                if parent is None or not parent.requires_grad or expr is None:
                    continue
                if parent.out_shape != node.out_shape and _elementwise(node) or self.pending:
                    expr = f"unbroadcast({expr}, {parent.out_shape})"
                target = "d" + self.name[id(parent)]
                note = "  # penalty term: its gradient reaches the weight only" if (
                    id(node) in self.penalty and parent.is_leaf) else (
                    "  # penalty term" if id(node) in self.penalty else "")
                if id(parent) in has_grad:
                    if target in fresh:  # our own array: add in place
                        lines.append(f"    {target} += {expr}{note}")
                    else:
                        lines.append(f"    {target} = {target} + {expr}{note}")
                        fresh.add(target)
                else:
                    lines.append(f"    {target} = {expr}{note}")
                    has_grad.add(id(parent))
                    if not _passes_through(expr, g):
                        fresh.add(target)
        return {self.name[id(n)]: "d" + self.name[id(n)] for n in program.nodes
                if n.is_leaf and n.requires_grad and id(n) in has_grad}


def _passes_through(expr, g):
    """Is this gradient expression `g` itself or a view of an array we do not own?"""
    return (expr == g or expr.endswith(".T") or expr.startswith(("np.broadcast_to", "unbroadcast("))
            or ".reshape(" in expr or "_g[" in expr)


def _uses(program):
    """How many op nodes (and returned tensors) read each node."""
    uses = {}
    for node in program.nodes:
        for parent in node.parents:
            if parent is not None:
                uses[id(parent)] = uses.get(id(parent), 0) + 1
    for t in program.outputs:
        uses[id(t._node())] = uses.get(id(t._node()), 0) + 1
    return uses


def _vdot_pairs(nodes, uses):
    """{Sum node: Pow(2) node} where a full sum is the square's only reader."""
    pairs = {}
    for node in nodes:
        if type(node).__name__ == "Sum" and node.axis is None and not node.keepdims:
            square = node.parents[0]
            if (type(square).__name__ == "Pow" and square.exponent == 2.0
                    and uses.get(id(square)) == 1 and square.parents[0] is not None):
                pairs[id(node)] = square
    return pairs


def _identifier(name):
    return name if isinstance(name, str) and name.isidentifier() and name not in ("np", "step") else None


def _elementwise(node):
    return type(node).__name__ in ("Add", "Sub", "Mul", "Div", "Maximum", "Minimum", "Where")


def _penalty_nodes(nodes):
    """Op nodes of penalty terms: made of parameters (and scalars) alone, feeding a scalar."""
    only = {}
    for n in nodes:
        only[id(n)] = (n.requires_grad if n.is_leaf else
                       all(p is None or only[id(p)] for p in n.parents))
    members = set()
    for n in reversed(nodes):
        if not n.is_leaf and only[id(n)] and (n.out_shape == () or id(n) in members):
            members.add(id(n))
            members.update(id(p) for p in n.parents if p is not None and not p.is_leaf and only[id(p)])
    return members


# ---- one template per op: forward expression, and (parent, gradient expression) pairs -------

def _inputs(writer, node):
    """The expression of each apply argument: a node's variable or a literal/constant."""
    exprs = []
    for i, parent in enumerate(node.parents):
        if parent is not None:
            exprs.append(writer.name[id(parent)])
        else:
            value = node.arguments[i]
            exprs.append(repr(value) if isinstance(value, (int, float)) else
                         writer.constant(value, f"K{len(writer.constants)}"))
    return exprs


def _index_expr(writer, index):
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for part in parts:
        if isinstance(part, np.ndarray):
            out.append(writer.array_args.get(id(part)) or writer.constant(part, f"K{len(writer.constants)}"))
        else:
            out.append(repr(part))
    return out[0] if not isinstance(index, tuple) else "(" + ", ".join(out) + ("," if len(out) == 1 else "") + ")"


def _forward(writer, node):
    kind, x = type(node).__name__, _inputs(writer, node)
    simple = {"Add": "{0} + {1}", "Sub": "{0} - {1}", "Mul": "{0} * {1}", "Div": "{0} / {1}",
              "Neg": "-{0}", "Exp": "np.exp({0})", "Log": "np.log({0})", "Sqrt": "np.sqrt({0})",
              "ReLU": "np.maximum({0}, 0)", "Sigmoid": "sigmoid({0})", "Tanh": "np.tanh({0})",
              "Abs": "np.abs({0})", "MatMul": "{0} @ {1}"}
    if kind == "MatMul" and len(node.out_shape) == 2 and writer.uses.get(id(node)) and not any(
            t._node() is node for t in writer.program.outputs):
        return writer.matmul(x[0], x[1], node.out_shape, node.out_dtype)
    if kind in simple and (kind != "MatMul" or len(node.out_shape) == 2):
        return simple[kind].format(*x)
    if kind == "Pow":
        return f"np.square({x[0]})" if node.exponent == 2 else f"{x[0]} ** {node.exponent!r}"
    if kind == "Transpose" and node.perm is None:
        return f"{x[0]}.T"
    if kind == "Reshape":
        return f"{x[0]}.reshape({node.out_shape})"
    if kind in ("Sum", "Mean") and node.axis is None and not node.keepdims:
        return f"{x[0]}.{kind.lower()}()"
    if kind == "LogSoftmax":
        return f"{x[0]} - {x[0]}.max({node.axis}, keepdims=True) - np.log(np.exp({x[0]} - {x[0]}.max({node.axis}, keepdims=True)).sum({node.axis}, keepdims=True))"
    if kind == "Index":
        return f"{x[0]}[{_index_expr(writer, node.index)}]"
    return _generic_forward(writer, node, x)


def _backward(writer, node, g):
    kind, x, out = type(node).__name__, _inputs(writer, node), writer.name[id(node)]
    a, b = (x + [None])[:2]
    table = {
        "Add": [g, g], "Sub": [g, f"-{g}"], "Mul": [f"{g} * {b}", f"{g} * {a}"],
        "Div": [f"{g} / {b}", f"-{g} * {out} / {b}"], "Neg": [f"-{g}"],
        "Exp": [f"{g} * {out}"], "Log": [f"{g} / {a}"], "Sqrt": [f"{g} / (2 * {out})"],
        "ReLU": [f"{g} * ({out} > 0)"], "Sigmoid": [f"{g} * {out} * (1 - {out})"],
        "Tanh": [f"{g} * (1 - {out} * {out})"], "Abs": [f"{g} * np.sign({a})"],
    }
    if kind in table:
        return list(zip(node.parents, table[kind]))
    if kind == "MatMul" and len(node.out_shape) == 2:
        # a gradient for W.T laid out as the transpose of a row-major array: W gets it
        # contiguous through Transpose's backward (as ops.MatMul does)
        transposed = [p is not None and type(p).__name__ == "Transpose" for p in node.parents]
        pa, pb = node.parents
        grad_a = grad_b = None
        if pa is not None and pa.requires_grad:
            grad_a = (f"{writer.matmul(b, g + '.T', pa.out_shape[::-1], node.out_dtype)}.T"
                      if transposed[0] else writer.matmul(g, b + ".T", pa.out_shape, node.out_dtype))
        if pb is not None and pb.requires_grad:
            grad_b = (f"{writer.matmul(g + '.T', a, pb.out_shape[::-1], node.out_dtype)}.T"
                      if transposed[1] else writer.matmul(a + ".T", g, pb.out_shape, node.out_dtype))
        return [(pa, grad_a), (pb, grad_b)]
    if kind == "Pow":
        p = node.exponent
        grad = f"{a} * (2 * {g})" if p == 2 else f"np.zeros_like({a})" if p == 0 else f"{p!r} * {a} ** {p - 1!r} * {g}"
        return [(node.parents[0], grad)]
    if kind == "Transpose" and node.perm is None:
        return [(node.parents[0], f"{g}.T")]
    if kind == "Reshape":
        return [(node.parents[0], f"{g}.reshape({node.in_shape})")]
    if kind == "Sum" and node.axis is None and not node.keepdims:
        return [(node.parents[0], f"np.broadcast_to({g}, {node.in_shape})")]
    if kind == "Mean" and node.axis is None and not node.keepdims:
        return [(node.parents[0], f"np.broadcast_to({g} / {node.count()}, {node.in_shape})")]
    if kind == "LogSoftmax":
        return [(node.parents[0], f"{g} - np.exp({out}) * {g}.sum({node.axis}, keepdims=True)")]
    if kind == "Index":
        index = _index_expr(writer, node.index)
        place = "_place" if _unique_rows(node.index, node.in_shape) else "_scatter"
        return [(node.parents[0], f"{place}({g}, {index}, {node.in_shape})")]
    return _generic_backward(writer, node, g)


def _generic_forward(writer, node, x):
    """Any other op (a custom Function, a convolution): a fresh node of its class, the traced
    node's attributes, its own forward — still one line."""
    key = f"OP{len(writer.constants)}"
    writer.constants[key] = _Replayer(node)
    writer.constants.setdefault("_scatter", _scatter)
    return f"{key}.forward({', '.join(x)})"


def _generic_backward(writer, node, g):
    key = next(k for k, v in writer.constants.items() if isinstance(v, _Replayer) and v.traced is node)
    writer.pending = f"    {key}_g = {key}.backward({g})"
    return [(parent, f"{key}_g[{i}]") for i, parent in enumerate(node.parents)]


class _Replayer:
    """Runs one op's own forward/backward on fresh nodes, as the engine would (the contract
    checks aside: they passed when the step was traced)."""

    def __init__(self, traced):
        self.traced, self.node = traced, None
        skip = {"parents", "saved_arrays", "out_shape", "out_dtype", "output", "scope", "hold",
                "arguments", "created_at", "anomaly_snapshot", "retains_grad"}
        slots = [s for c in type(traced).__mro__ for s in getattr(c, "__slots__", ())]
        self.attributes = {k: getattr(traced, k) for k in slots if k not in skip and hasattr(traced, k)
                           and not k.startswith("__")}
        self.attributes.update({k: v for k, v in getattr(traced, "__dict__", {}).items() if k not in skip})

    def forward(self, *arrays):
        node = type(self.traced).__new__(type(self.traced))
        node.saved_arrays = ()
        node.parents = self.traced.parents
        for k, v in self.attributes.items():
            setattr(node, k, v)
        out = np.asarray(node.forward(*arrays))
        self.node = node
        return out

    def backward(self, g):
        grads = self.node.backward(g)
        if type(grads) is not tuple:
            grads = tuple(grads) if isinstance(grads, list) else (grads,)
        return [None if gr is None else np.asarray(gr) for gr in grads]


def _unique_rows(index, shape):
    """x[arange(n), labels]: each element picked at most once, so the gradient can be placed
    with an assignment instead of np.add.at."""
    return (isinstance(index, tuple) and len(index) == 2 and isinstance(index[0], np.ndarray)
            and index[0].ndim == 1 and len(index[0]) == shape[0]
            and index[0] is row_indices(shape[0]))


def _place(g, index, shape):
    grad = np.zeros(shape, dtype=g.dtype)
    grad[index] = g
    return grad


def _scatter(g, index, shape):
    grad = np.zeros(shape, dtype=g.dtype)
    np.add.at(grad, index, g)
    return grad
