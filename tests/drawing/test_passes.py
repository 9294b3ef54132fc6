"""The drawing passes, each alone on records: no graphviz, no DOT parsing."""
import ast
from pathlib import Path

import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import three_layer_network
from tinygrad_l2.drawing import passes
from tinygrad_l2.drawing.records import trace


@pytest.fixture
def net():
    return three_layer_network()


def by_name(picture):
    return {r.lines[0]: r for r in picture.records.values() if r.kind == "tensor"}


def edges_of(picture):
    return {(e.tail, e.head): e for e in picture.edges}


def test_trace_gives_an_op_and_a_tensor_record_per_op_and_one_per_leaf(net):
    picture = trace(net["loss"])
    ops = [r for r in picture.records.values() if r.kind == "op"]
    tensors = [r for r in picture.records.values() if r.kind == "tensor"]
    assert all(f"op_{t.id}" in picture.records or t.source.is_leaf for t in tensors)
    assert len(tensors) == len(ops) + sum(1 for t in tensors if t.source.is_leaf)
    named = by_name(picture)
    assert named["W1"].role == "parameter" and named["X"].role == "input"
    assert named["Z1"].role == "intermediate" and named["loss"].role == "output"
    assert named["W1"].lines[1] == "5×2 float64"
    assert (named["Z1"].id, "op_" + named["A1"].id) in edges_of(picture)


def test_hide_constants_drops_scalar_constants_and_their_edges():
    x = tl.Tensor(np.ones(3), requires_grad=True)
    y = (x * tl.Tensor(np.array(2.0))).sum()
    picture = trace(y)
    constant = next(i for i, r in picture.records.items() if r.role == "constant")
    hidden = passes.hide_constants(picture)
    assert constant not in hidden.records and len(hidden.records) == len(picture.records) - 1
    assert all(constant not in (e.tail, e.head) for e in hidden.edges)


def test_mark_penalties_flags_the_l2_ops_and_not_the_layers_transposes():
    model = tl.nn.MLP((2, 3, 1), kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=0)
    loss = model(np.ones((4, 2))).sum() + model.regularization_loss()
    marked = passes.mark_penalties(trace(loss))
    flagged = {r.lines[0] for r in marked.records.values() if r.penalty and r.kind == "op"}
    assert flagged >= {"Square", "Sum", "Mul(×0.1)"} and "Transpose" not in flagged
    assert not any(r.penalty for r in marked.records.values() if r.role == "parameter")


def test_colour_terms_puts_the_l2_term_only_on_edges_to_weights(net):
    picture = passes.colour_terms(trace(net["loss"]), {"data": net["cost"], "l2": net["penalty"]})
    names = {i: r.lines[0] for i, r in picture.records.items()}
    l2_tails = {names[e.tail] for e in picture.edges if "l2" in e.terms and picture.records[e.tail].kind == "tensor"}
    assert {"W1", "W2", "W3"} <= l2_tails
    assert not l2_tails & {"b1", "Z1", "A1", "X", "cost"}
    assert picture.colours == {"data": passes.TERM_COLOURS[0], "l2": passes.TERM_COLOURS[1]}
    with pytest.raises(ValueError, match="term 'other' is not part of the graph"):
        passes.colour_terms(trace(net["loss"]), {"other": tl.Tensor(1.0, requires_grad=True) * 2})


def test_merge_intermediates_connects_ops_directly_and_keeps_names_and_terms():
    x = tl.Tensor(np.ones(3), requires_grad=True, name="x")
    y = (x.exp() * 2).sum()
    y.name = "y"
    picture = passes.colour_terms(trace(y), {"y": y})
    merged = passes.merge_intermediates(picture)
    kept = {r.lines[0] for r in merged.records.values() if r.kind == "tensor"}
    assert kept == {"x", "y"}
    exp_op = next(i for i, r in merged.records.items() if r.lines == ["Exp"])
    mul_op = next(i for i, r in merged.records.items() if r.lines == ["Mul(×2)"])
    assert edges_of(merged)[(exp_op, mul_op)].terms == ["y"]
    assert all(e.tail != e.head for e in merged.edges)


def test_collapse_modules_makes_one_node_per_layer_with_parameters_beside_it():
    model = tl.nn.MLP((2, 3, 3, 1), dtype=np.float64, rng=0)
    picture = trace(model(np.ones((4, 2))).sum(), names=dict(model.named_parameters()))
    collapsed = passes.collapse_modules(picture)
    modules = [r for r in collapsed.records.values() if r.kind == "module"]
    assert sorted(r.lines[0] for r in modules) == ["0: Linear", "1: ReLU", "2: Linear", "3: ReLU", "4: Linear"]
    assert not any(r.kind == "op" and r.scope for r in collapsed.records.values())
    weight = by_name(collapsed)["0.weight"]
    assert [type(m).__name__ for m in weight.scope] == ["MLP"]  # beside "0: Linear", inside MLP
    keys = [(e.tail, e.head) for e in collapsed.edges]
    assert len(keys) == len(set(keys)) and all(t != h for t, h in keys)
    assert (weight.id, next(r.id for r in modules if r.lines == ["0: Linear"])) in keys


def test_nested_module_calls_give_nested_scopes_named_from_the_outermost():
    class Net(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = tl.nn.MLP((2, 2), dtype=np.float64, rng=0)

        def forward(self, x):
            return self.body(x)
    picture = trace(Net()(np.ones((1, 2))).sum())
    matmul = next(r for r in picture.records.values() if r.lines == ["MatMul"])
    assert [picture.module_names[m] for m in matmul.scope] == ["Net", "body: MLP", "body.0: Linear"]


def test_records_and_passes_never_import_graphviz():
    here = Path(tl.__file__).parent / "drawing"
    for module in ("records.py", "passes.py"):
        tree = ast.parse((here / module).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any("graphviz" in m or m in ("render", "emit") for m in imported), module


def test_the_core_carries_no_module_scope():
    t = tl.Tensor(np.ones(2), requires_grad=True)
    node = (t * 2)._ctx
    assert not hasattr(t, "_scope") and not hasattr(node, "scope")
    from tinygrad_l2.function import TensorBase
    assert not any("scope" in s for s in TensorBase.__slots__ + tl.Function.__slots__)
