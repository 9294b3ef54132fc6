"""The trace: a tensor's graph as plain records — tensor boxes, op ellipses and the edges
between them — with no graphviz in sight.  Passes (passes.py) rewrite records; the emitter
(emit.py) writes them as DOT.

Each op node of the graph gives two records, its op (`op_t7`) and its output tensor (`t7`);
each leaf gives one tensor record.  Ids are short and stable for a graph (`t` + position in
topological order).  Records keep the graph node they stand for (`source`), for the passes
that must read the graph (penalty terms, term paths).
"""
from dataclasses import dataclass, field

import numpy as np

from ..engine import node_of, topological_order
from ..nn.module import module_calls


@dataclass
class Record:
    """A node of the picture: a tensor box, an op ellipse, or a collapsed module."""
    id: str
    kind: str  # "tensor", "op" or "module"
    lines: list  # the label, one string per line
    role: str = ""  # tensors: "parameter", "input", "constant", "intermediate" or "output"
    named: bool = False  # a tensor with a user-given name (kept when intermediates merge)
    scope: tuple = ()  # the modules whose call made it, outermost first
    penalty: bool = False  # part of a regularization term
    source: object = None  # the graph node
    module: object = None  # a collapsed module's Module


@dataclass
class Edge:
    tail: str
    head: str
    terms: list = field(default_factory=list)  # loss terms whose gradient travels it


@dataclass
class Picture:
    records: dict  # id -> Record, inputs before consumers
    edges: list
    root: str
    module_names: dict = field(default_factory=dict)  # module -> "layers.0: Linear"
    colours: dict = field(default_factory=dict)  # term -> colour, for the legend


def trace(root, names=None, show_values=False, show_grads=False, summary="norm"):
    """The Picture of `root`'s graph.  names: {name: tensor} for tensors without `.name`."""
    nodes = topological_order(root, include_constants=True)
    root = node_of(root)
    given = {node_of(t): n for n, t in (names or {}).items()}
    short = {node: f"t{i}" for i, node in enumerate(nodes)}
    records, edges = {}, []
    for node in nodes:
        name = given.get(node) or _name(node)
        tensor = _tensor_record(node, short[node], name, node is root, show_values, show_grads, summary)
        if not node.is_leaf:
            op = Record("op_" + short[node], "op", [node.label()], source=node)
            records[op.id] = op
            edges.append(Edge(op.id, tensor.id))
            edges += [Edge(short[p], op.id) for p in node.parents if p is not None]
        records[tensor.id] = tensor
    scopes, module_names = _scopes(nodes)
    for record in records.values():
        record.scope = scopes.get(record.source, ())
    _name_after_modules(records, module_names)
    return Picture(records, edges, short[root], module_names)


def _name_after_modules(records, module_names):
    """An unnamed tensor made inside a module's call is named after the module and its op
    ("0.matmul", "layers.1.relu"), instead of a bare id."""
    taken = {}
    for record in records.values():
        if record.kind == "tensor" and record.role == "intermediate" and not record.named and record.scope:
            owner = module_names.get(record.scope[-1], "").partition(": ")
            prefix = owner[0] if owner[2] else type(record.scope[-1]).__name__
            name = f"{prefix}.{type(record.source).__name__.lower()}"
            taken[name] = taken.get(name, 0) + 1
            record.lines[0] = name if taken[name] == 1 else f"{name}{taken[name]}"


def _name(node):
    t = node.tensor()
    return t.name if t is not None else None


def _tensor_record(node, id_, name, is_root, show_values, show_grads, summary):
    """A tensor box: name, shape and dtype, and value/grad summaries when the tensor is alive
    (an intermediate the user let go of is drawn from its op node's record)."""
    t = node.tensor()
    lines = [name or id_, f"{'×'.join(str(n) for n in node.out_shape) or 'scalar'} {node.out_dtype}"]
    parameter = node.is_leaf and node.requires_grad
    if show_values and t is not None:
        lines.append("value " + _summary(t.data, summary))
    grad = None if t is None else t._grad  # not .grad: an intermediate's would warn
    if show_grads and t is not None and (grad is not None or parameter):
        lines.append("grad " + (_summary(grad, summary) if grad is not None else "None"))
    if is_root:
        role = "output"
    elif parameter:
        role = "parameter"
    elif node.is_leaf:
        role = "constant" if node.out_shape == () else "input"
    else:
        role = "intermediate"
    return Record(id_, "tensor", lines, role, named=name is not None, source=node)


def _summary(array, summary):
    array = np.asarray(array, dtype=np.float64)
    if summary == "norm":
        return f"‖·‖={np.linalg.norm(array):.4g}"
    return f"[{array.min():.3g}, {array.max():.3g}]" if array.size else "[]"


def _scopes(nodes):
    """({graph node: the modules whose call made it, outermost first}, module names).

    A call made the ops that lead from its inputs to its output: the output's ancestors that
    are not its inputs' ancestors.  Calls nest (a Sequential's call holds its layers'), so a
    node's scope lists every call that made it, largest first.  A parameter sits in the
    module that owns it."""
    calls = []
    for order, (module, output, inputs) in enumerate(module_calls(nodes)):
        before = set().union(*(_ancestors(i) for i in inputs)) if inputs else set()
        calls.append((-order, module, {n for n in _ancestors(output) if not n.is_leaf} - before))
    # outermost first: more members, or as many and called around the other (recorded later)
    calls = [(module, members) for _, module, members in sorted(calls, key=lambda c: (-len(c[2]), c[0]))]
    scopes = {}
    for module, members in calls:
        for node in members:
            if module not in scopes.get(node, ()):
                scopes[node] = scopes.get(node, ()) + (module,)
    names = _module_names([scope[0] for scope in scopes.values()])
    _place_parameters(nodes, scopes)
    return scopes, names


def _ancestors(node):
    return set(topological_order(node, include_constants=True))


def _module_names(tops):
    """module -> "layers.0: Linear" (its dotted name within the outermost module called)."""
    names = {}
    for top in dict.fromkeys(tops):
        for dotted, module in top.named_modules():
            names.setdefault(module, f"{dotted}: {type(module).__name__}" if dotted
                             else type(module).__name__)
    return names


def _place_parameters(nodes, scopes):
    """A parameter's scope: the chain of modules down to the one that owns it, within the
    outermost module of the calls that used it."""
    leaves = {id(n.tensor()): n for n in nodes if n.is_leaf and n.tensor() is not None}
    for top in dict.fromkeys(scope[0] for scope in list(scopes.values())):
        chains = {top: (top,)}
        for _, module in top.named_modules():
            for child in module.children():
                chains[child] = chains[module] + (child,)
            for _, p in module.named_parameters(recurse=False):
                leaf = leaves.get(id(p))
                if leaf is not None and leaf not in scopes:
                    scopes[leaf] = chains[module]
