"""Names for the generated code: the function's own parameter names for its arguments, the
tensors' names (or W1, b1, ...) for parameters, Z/A/M names for a layer's tensors, `loss`,
and d<name> for the gradient of <name>.  Every name is claimed once."""
from __future__ import annotations

import builtins
import inspect
import keyword
import re

import numpy as np

from ..ops import LogSoftmax, MatMul, ReLU, Sigmoid, Tanh, Transpose
from ..ops.elementwise import Add
from .analysis import readers

RESERVED = {"np", "step", "lr", "_accumulate_grads", "_check"}
_GENERATED = re.compile(r"^(P|B|BUF|SCRATCH|K|OP|OBJ|CHECK|t)\d+$")  # the constants' and temporaries' names
_ACTIVATIONS = (ReLU, Sigmoid, Tanh)


def parameter_names(fn, n):
    """The function's own parameter names (X, y, ...) for the generated code."""
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return [(names[i] if i < len(names) and identifier(names[i]) else f"arg{i}") for i in range(n)]


def identifier(name):
    """`name` if the generated code may use it as a variable: an identifier that is no Python
    keyword ("lambda" is a natural tensor name here) and shadows no builtin (slice, Ellipsis)."""
    usable = (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
              and name not in RESERVED and not hasattr(builtins, name))
    return name if usable else None


class Names(dict):
    """{id(Value): name}, with `claim` keeping every name (and its d-twin) unique."""

    def __init__(self):
        super().__init__()
        self.taken = set(RESERVED)

    def claim(self, value, base):
        name, k = base, 1
        while {name, f"d{name}", f"k{name}"} & self.taken or _GENERATED.match(name):
            k += 1
            name = f"{base}_{k}"
        self.taken.update({name, f"d{name}", f"k{name}"})
        self[id(value)] = name
        return name

    def twin(self, value, name):
        """d<name> or k<name>: reserved when <name> was claimed; given to the first asker."""
        if name not in self.values():
            self[id(value)] = name


def name_values(ir, args, arg_names, nodes, outputs):
    """Names for every Value the source shows by name (see the module docstring)."""
    names = Names()
    arrays = [(a, n) for a, n in zip(args, arg_names) if isinstance(getattr(a, "_data", a), np.ndarray)]
    for value, (arg, base) in zip(ir.inputs, arrays):
        names.claim(value, identifier(getattr(arg, "name", None)) or base)
    weights = 0
    for tensor, value in ir.params:
        weights += tensor.ndim >= 2
        names.claim(value, identifier(tensor.name) or (f"W{weights}" if tensor.ndim >= 2 else f"b{weights}"))
    for instr in ir.instrs:
        if instr.kind == "input" and id(instr.out) in ir.buffer_names:
            names.claim(instr.out, ir.buffer_names[id(instr.out)])
    _name_loss_terms(ir, nodes, outputs, names)
    _name_penalty_scales(ir, nodes, names)
    layer = 0
    for node in nodes:
        value = ir.value_of.get(node)
        if node.is_leaf or value is None or id(value) in names:
            continue
        layer += type(node) is MatMul
        base = _op_name(node, layer, names, ir, outputs)
        if base:
            names.claim(value, base)
    for value, key, weight in ir.state_names:
        names.claim(value, f"{key}_{names[id(weight)]}")
    for instr in ir.instrs:
        if instr.kind == "read" and instr.fn[0] == "group":
            names.claim(instr.out, f"lr{instr.fn[2]}")
    for factor, weight in ir.decays:
        if id(factor) not in names:
            names.twin(factor, f"k{names[id(weight)]}")
    for data, weight in ir.data_grads:  # the update's data term: dW itself
        if id(data) not in names:
            names.twin(data, f"d{names[id(weight)]}")
    for instr in ir.instrs:
        out = instr.out
        held, node = ir.grad_of.get(id(out), (None, None)) if out is not None else (None, None)
        node = node if held is out else None
        if node is not None and id(out) not in names:  # d<name of the node it is the gradient of>
            base = names.get(id(ir.value_of.get(node))) or _param_name(ir, node, names)
            if base:
                names.twin(out, f"d{base}")
    return names


def _name_loss_terms(ir, nodes, outputs, names):
    """loss = cost + penalty: the two addends of a returned loss, one of them a penalty term,
    take the textbook names (unless their tensors have names)."""
    if len(outputs) != 1 or type(outputs[0]._node()) is not Add:
        return
    members = penalty_nodes(nodes)
    parts = [p for p in outputs[0]._node().parents if p is not None and not p.is_leaf]
    if len(parts) == 2 and sum(id(p) in members for p in parts) == 1:
        for part in parts:
            value, tensor = ir.value_of.get(part), part.tensor()
            if value is not None and not (tensor is not None and identifier(tensor.name)):
                names.claim(value, "penalty" if id(part) in members else "cost")


def _name_penalty_scales(ir, nodes, names):
    """κ: a number computed once that a penalty's backward multiplies a weight by (dW gains
    κ·W; κ = 2λ for a λ·Σw² term), named as the README and the tables name it."""
    members, weights = penalty_nodes(nodes), {id(v) for _, v in ir.params}
    use = readers(ir)
    for instr in ir.instrs:
        out = instr.out
        if instr.phase != "constants" or out is None or instr.node is None or id(instr.node) not in members:
            continue
        consumers = use.get(id(out), [])
        if consumers and all(c is not None and c.fn is np.multiply and any(id(a) in weights for a in c.args)
                             for c in consumers):
            names.claim(out, "kappa")


def _param_name(ir, node, names):
    tensor = node.tensor() if node.is_leaf else None
    return next((names[id(v)] for t, v in ir.params if t is tensor), None)


def _op_name(node, layer, names, ir, outputs):
    tensor = node.tensor()
    named = identifier(tensor.name) if tensor is not None else None
    if named:
        return named
    if len(outputs) == 1 and outputs[0]._node() is node:
        return "loss"
    kind, parent = type(node), node.parents[0] if node.parents else None
    if kind is MatMul:
        return f"M{layer}"
    if kind is Add and type(parent) is MatMul:
        return f"Z{layer}"
    if kind in _ACTIVATIONS:
        return f"A{layer}"
    if kind is LogSoftmax:
        return "logp"
    if kind is Transpose and parent is not None and parent.is_leaf and id(ir.value_of.get(parent)) in names:
        return names[id(ir.value_of[parent])] + "_T"
    return None  # a temporary: written inside its reader when read once


def penalty_nodes(nodes):
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


def mark_penalties(ir, nodes):
    """'penalty term' beside every line a penalty's op wrote (its gradient reaches only the
    weights: nothing else reads these lines)."""
    members, made = penalty_nodes(nodes), set()
    for instr in ir.instrs:
        if instr.node is not None and id(instr.node) in members and not instr.note:
            instr.note = "penalty term"
            made.add(id(instr.out))
        elif instr.phase == "backward" and any(id(v) in made for v in instr.reads()):
            instr.note = "+ the penalty term's gradient: it joins the weight's here, nowhere else"
