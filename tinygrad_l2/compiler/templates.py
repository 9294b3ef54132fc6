"""One template per op: its forward expression and its (parent, gradient expression) pairs,
as numpy source; any other op (a custom Function, a convolution) replays its own methods."""
import numpy as np

from ..ops import row_indices


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


def forward_expression(writer, node):
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
    if kind == "LogSoftmax" and 0 not in node.out_shape:
        into = f", out={x[0]}" if writer.reusable(node.parents[0], node) else ""
        return f"_log_softmax({x[0]}, {node.axis}{into})" + ("  # in place: nothing else reads " + x[0] if into else "")
    if kind == "Index":
        return f"{x[0]}[{_index_expr(writer, node.index)}]"
    if kind == "Where":  # the condition is an argument (else the step runs eagerly): read it each call
        return f"np.where({_index_expr(writer, node.condition)}, {x[0]}, {x[1]})"
    return _generic_forward(writer, node, x)


def backward_pairs(writer, node, g):
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
    if kind == "Where":
        condition = _index_expr(writer, node.condition)
        return [(node.parents[0], f"np.where({condition}, {g}, 0)"), (node.parents[1], f"np.where({condition}, 0, {g})")]
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
        skip = {"parents", "saved_arrays", "out_shape", "out_dtype", "output", "hold",
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
        return [np.zeros(p.out_shape, p.out_dtype) if gr is None and p is not None else np.asarray(gr)
                for gr, p in zip(grads, self.traced.parents)]


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


def _log_softmax(x, axis, out=None):
    """x − max − log Σ e^(x − max), as ops.LogSoftmax, in two passes over x (into `out`)."""
    shifted = np.subtract(x, x.max(axis, keepdims=True), out=out)
    shifted -= np.log(np.exp(shifted).sum(axis, keepdims=True))
    return shifted
