"""The generated source: names for every tensor, forward lines, backward lines, and the exact
rewrites (Σw² as a dot product, in-place bias add and ReLU, matmuls into buffers)."""
import builtins
import inspect
import re

import numpy as np

from ..engine import topological_order, unbroadcast
from ..function import TensorBase
from ..ops import sigmoid
from .buffers import reuse_buffers
from .fusions import cross_entropies, cross_entropy_grad, vdot_pairs
from .templates import _Replayer, _index_expr, _log_softmax, _place, _scatter, backward_pairs, forward_expression


def parameter_names(fn, n):
    """The function's own parameter names (X, y, ...) for the generated code."""
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return [(names[i] if i < len(names) and _identifier(names[i]) else f"arg{i}") for i in range(n)]


def generate(program, args, arg_names, update=None):
    """The source of `step(*args) -> (outputs, parameter gradients)` and the function; with an
    `update` (compiler.update.FusedUpdate), `step(*args, lr) -> (outputs, None)` that also
    applies the SGD update."""
    writer = _Writer(program, args, arg_names, update)
    source = writer.source()
    # an op replayed through its own methods (no template) may save arrays for its backward
    # that the source does not show: then no buffer is shared
    generic = any(isinstance(v, _Replayer) for v in writer.constants.values())
    source, kept = (source, dict(writer.buffers)) if generic else reuse_buffers(source, writer.buffers)
    constants = {k: v for k, v in writer.constants.items() if k not in writer.buffers or k in kept}
    namespace = dict(constants, np=np, unbroadcast=unbroadcast, sigmoid=sigmoid,
                     _scatter=_scatter, _place=_place, _log_softmax=_log_softmax,
                     _ce_grad=cross_entropy_grad)
    exec(builtins.compile(source, "<tl.compile>", "exec"), namespace)  # noqa: S102 - ours
    program.names = {id(p): writer.name[id(n)] for n in program.nodes if n.is_leaf
                     for p in [n.tensor()]}
    return source, namespace["step"], list(kept.values())


class _Writer:
    """Names every node and writes its forward and backward lines."""

    def __init__(self, program, args, arg_names, update):
        self.program, self.args, self.given_names, self.update = program, args, arg_names, update
        self.decays = {}  # weight's name -> its L2 factor's variables, when the update is written
        self.name, self.constants, self.layer, self.buffers = {}, {}, 0, {}
        self.penalty = _penalty_nodes(program.nodes)
        self.uses = _uses(program)
        self.fused = vdot_pairs(program.nodes, self.uses)  # Sum node id -> its Pow(2) node
        self.entropies = cross_entropies(program.nodes, self.uses)  # Mean id -> (LogSoftmax, Index)
        self.skipped = {id(pow_node) for pow_node in self.fused.values()} | {
            id(n) for log_softmax, index in self.entropies.values() for n in (index, _consumer(index, program))}
        self._name_inputs(args)

    def _name_inputs(self, args):
        """Names for the arguments, parameters and constants; every name is claimed once."""
        self.taken = set(_RESERVED)
        self.arg_names = [self.claim(_identifier(getattr(a, "name", None)) or self.given_names[i])
                          for i, a in enumerate(args)]
        self.array_args = {}  # id(array the step receives) -> its parameter's name; the same
        for a, name in zip(args, self.arg_names):  # object twice: the first (the trace key knows)
            if isinstance(a, TensorBase | np.ndarray):
                self.array_args.setdefault(id(a._data if isinstance(a, TensorBase) else a), name)
        weights = 0
        for node in self.program.nodes:
            t = node.tensor() if node.is_leaf else None
            if t is None:
                continue
            if id(t._data) in self.array_args and not node.requires_grad:  # an argument, or a
                self.name[id(node)] = self.array_args[id(t._data)]  # constant made on its array
            elif node.requires_grad:
                weights += t.ndim >= 2
                self.name[id(node)] = self.claim(_identifier(t.name) or (f"W{weights}" if t.ndim >= 2 else f"b{weights}"))
            else:
                self.name[id(node)] = self.constant(t, f"C{len(self.constants)}")

    def claim(self, base):
        """`base`, or `base_2`, `base_3`, ... : a name no other variable (nor its d/k twin) has."""
        name, k = base, 1
        while {name, f"d{name}", f"k{name}"} & self.taken or _GENERATED.match(name):
            k += 1
            name = f"{base}_{k}"
        self.taken.update({name, f"d{name}", f"k{name}"})
        return name

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
            self.name[id(node)] = self.claim(self._op_name(node, count))
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
        arguments = self.arg_names + (["lr"] if self.update else [])
        header = ("    # backward (reverse order; a penalty's lines reach only the weights)" if not self.update else
                  "    # backward from dloss = lr: every d<name> below is lr·∂loss/∂<name>")
        tail = ([*self._update_lines(params, grads), f"    return [{outputs}], None"] if self.update else
                [f"    return [{outputs}], [{grad_list}]"])
        lines = [f"def step({', '.join(arguments)}):", "    # parameters", *reads,
                 "    # forward", *forward, header, *backward, *tail, ""]
        return "\n".join(lines)

    def _update_lines(self, params, grads):
        """SGD with the learning rate already in every gradient and L2 as a decay:
        w ← (1 − lr·(2c + λ))·w − lr·∂data/∂w  (see compiler/update.py for the algebra)."""
        lines = ["    # update: SGD; L2 (and weight_decay) as a decay of the weights it touches, (1 − lr·κ)·W"]
        wd = self.update.weight_decay
        for p in params:
            if p not in grads and p not in self.decays:
                continue  # no gradient reached it: eager SGD skips it too
            factors = list(self.decays.get(p, [])) + ([f"lr * {wd!r}"] if wd else [])
            if factors:
                total = factors[0] if len(factors) == 1 else f"({' + '.join(factors)})"
                lines.append(f"    {p} *= 1 - {total}  # the L2 gradient as weight decay")
            if p in grads:
                lines.append(f"    {p} -= {grads[p]}")
        return lines

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
        if id(node) in self.entropies:
            log_softmax, index = self.entropies[id(node)]
            picks = f"{self.name[id(log_softmax)]}[{_index_expr(self, index.index)}]"
            return f"-({picks}.mean())  # cross-entropy: −mean of the log-probabilities at the labels"
        kind, parents = type(node).__name__, node.parents
        source = parents[0]
        if kind in ("Add", "ReLU") and self.reusable(source, node):
            x = self.name[id(source)]
            if kind == "ReLU":
                return f"np.maximum({x}, 0, out={x})  # in place: nothing else reads {x}"
            if parents[1] is not None and node.out_shape == source.out_shape:
                return f"np.add({x}, {self.name[id(parents[1])]}, out={x})  # in place: nothing else reads {x}"
        return forward_expression(self, node)

    def reusable(self, source, consumer):
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
        self.has_grad, self.fresh = {id(root_node)}, set()  # fresh: arrays this step made
        seed = "lr" if self.update else "1"
        lines.append(f"    d{self.name[id(root_node)]} = np.array({seed}, dtype=np.{root_node.out_dtype.name})")
        for node in reversed(topological_order(root_node)):
            if not node.is_leaf and id(node) in self.has_grad:
                self.pending = None
                pairs = self._pairs(node, "d" + self.name[id(node)], lines)
                if self.pending:
                    lines.append(self.pending)
                for parent, expr in pairs:
                    if parent is not None and parent.requires_grad and expr is not None:
                        lines.append(self._gradient_line(node, parent, expr))
        return {self.name[id(n)]: "d" + self.name[id(n)] for n in program.nodes
                if n.is_leaf and n.requires_grad and id(n) in self.has_grad}

    def _pairs(self, node, g, lines):
        """(parent, gradient expression) pairs, with the exact rewrites: d(Σw²)/dw = 2w straight
        to the weight (or, when the update is written, a decay of w); ReLU's mask applied in
        place to a gradient array this step made and nothing else reads."""
        if id(node) in self.entropies:  # ∂/∂z = (softmax − onehot)·g/m, over the log-softmax's array
            log_softmax, index = self.entropies[id(node)]
            expr = f"_ce_grad({self.name[id(log_softmax)]}, {_index_expr(self, index.index)}, {g})"
            return [(log_softmax.parents[0], expr)]
        if id(node) not in self.fused:
            if type(node).__name__ == "ReLU" and g in self.fresh:
                return [(node.parents[0], f"np.multiply({g}, {self.name[id(node)]} > 0, out={g})")]
            return backward_pairs(self, node, g)
        w = self.fused[id(node)].parents[0]
        name = self.name[id(w)]
        if not (self.update and w.is_leaf):
            return [(w, f"{name} * (2 * {g})")]
        earlier = len(self.decays.get(name, []))
        factor = f"k{name}" + (f"_{earlier}" if earlier else "")
        lines.append(f"    {factor} = 2 * {g}  # penalty term: its gradient, 2c·{name} (× lr), "
                     f"becomes {name}'s decay in the update")
        self.decays.setdefault(name, []).append(factor)
        return []

    def _gradient_line(self, node, parent, expr):
        """`d<parent> = expr`, or its accumulation when another consumer came first."""
        if self.pending:
            expr = f"unbroadcast({expr}, {parent.out_shape})"
        elif parent.out_shape != node.out_shape and _elementwise(node):
            expr = _sum_to(expr, node.out_shape, parent.out_shape)
        target = "d" + self.name[id(parent)]
        note = "  # penalty term: its gradient reaches the weight only" if (
            id(node) in self.penalty and parent.is_leaf) else (
            "  # penalty term" if id(node) in self.penalty else "")
        if id(parent) not in self.has_grad:
            self.has_grad.add(id(parent))
            if not _passes_through(expr, "d" + self.name[id(node)]):
                self.fresh.add(target)
            return f"    {target} = {expr}{note}"
        if target in self.fresh:  # our own array: add in place
            return f"    {target} += {expr}{note}"
        self.fresh.add(target)
        return f"    {target} = {target} + {expr}{note}"


def _sum_to(expr, shape, target):
    """The source of unbroadcast(expr, target) for a gradient of `shape`, axes found now."""
    if target == ():
        return f"unbroadcast({expr}, ())"  # keeps a 0-d array (a numpy scalar is immutable)
    leading = len(shape) - len(target)
    stretched = tuple(i + leading for i, n in enumerate(target) if n == 1 and shape[i + leading] != 1)
    axes = tuple(range(leading)) + stretched
    operand = expr if expr.isidentifier() else f"({expr})"  # a * b: the sum is of the product
    if not stretched:
        return f"{operand}.sum(axis={axes})"
    return f"{operand}.sum(axis={axes}, keepdims=True).reshape({target})"


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


_RESERVED = {"np", "step", "lr", "unbroadcast", "sigmoid", "_scatter", "_place", "_log_softmax", "_ce_grad"}
_GENERATED = re.compile(r"^(P|BUF|K|C|OP)\d+(_g)?$")  # the constants' names


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


def _consumer(node, program):
    """The one op node that reads `node`."""
    return next(n for n in program.nodes if any(p is node for p in n.parents))
