"""Per-term gradient tracing on the canonical 3-layer network."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import assert_machine_equal, three_layer_network


@pytest.fixture
def net():
    return three_layer_network(seed=3, m=16, lambd=0.7)


def terms(net):
    return {"data": net["cost"], "l2": net["penalty"]}


def test_l2_term_reaches_exactly_the_weights(net):
    trace = tl.trace_terms(terms(net), net["named"])
    reached = {name for name in net["named"] if trace.reaches("l2", name)}
    assert reached == {"W1", "W2", "W3"}
    assert all(trace.reaches("data", name) for name in net["named"])


def test_l2_contribution_is_lambda_over_m_times_w(net):
    trace = tl.trace_terms(terms(net), net["named"])
    kappa = net["lambd"] / net["m"]
    for name, t in net["named"].items():
        contribution = trace.contribution("l2", name)
        if name.startswith("W"):
            assert_machine_equal(contribution, kappa * t.data, ulps=2)
        elif t.requires_grad:
            assert not np.any(contribution)
        else:
            assert contribution is None  # X: an input, no gradient at all


def test_contributions_add_up_to_the_loss_gradient(net):
    trace = tl.trace_terms(terms(net), net["named"])
    net["loss"].backward()
    for name in ("W1", "b2", "W3"):
        total = trace.contribution("data", name) + trace.contribution("l2", name)
        assert_machine_equal(net["named"][name].grad, total, ulps=4)


def test_tracing_leaves_grads_untouched(net):
    tl.trace_terms(terms(net), net["named"])
    tl.with_without(terms(net), "l2", net["named"])
    assert all(t._grad is None for t in net["named"].values())  # _grad: intermediates too, unwarned
    net["loss"].backward()  # the graph is still usable


def test_with_vs_without_bias_and_activation_gradients_are_bit_identical(net):
    report = tl.with_without(terms(net), "l2", net["named"])
    kappa = net["lambd"] / net["m"]
    for row in report.to_rows():
        name = row["tensor"]
        if name.startswith("W"):
            assert row["changed"]
            assert row["Δgrad = κ·tensor, κ ="] == pytest.approx(kappa, rel=1e-12)
            assert row["max |Δ − κ·tensor|"] < 1e-15
        else:
            assert not row["changed"]
            if name != "X":
                np.testing.assert_array_equal(report.with_term[name], report.without_term[name])


def test_trace_table_prints_every_tensor_and_term(net):
    trace = tl.trace_terms(terms(net), net["named"])
    lines = str(trace).splitlines()
    assert "l2 reaches" in lines[1] and "data ‖grad‖" in lines[1]
    b1 = next(line for line in lines if line.startswith("b1")).split()
    assert b1[:4] == ["b1", "parameter", "(5,)", "yes"] and b1[5] == "no"
    data_norm = float(np.linalg.norm(trace.contribution("data", "b1")))
    assert data_norm > 0 and float(b1[4]) == pytest.approx(data_norm, rel=1e-3)  # as printed
    assert float(b1[6]) == 0.0
    assert len(lines) == 3 + len(net["named"])


def test_bad_arguments(net):
    with pytest.raises(ValueError, match="'nope' is not one of the terms"):
        tl.with_without(terms(net), "nope", net["named"])
    with pytest.raises(ValueError, match="term 'Z' has shape \\(16, 5\\); each term must be a scalar"):
        tl.trace_terms({"Z": net["named"]["Z1"]}, net["named"])
    with pytest.raises(TypeError, match="'W1' is a ndarray"):
        tl.trace_terms(terms(net), {"W1": np.ones(2)})


def test_tracing_after_a_backward_that_freed_the_graph_says_what_to_do():
    net = three_layer_network()
    net["loss"].backward()
    terms = {"data": net["cost"], "l2": net["penalty"]}
    for trace in (lambda: tl.trace_terms(terms, net["named"]),
                  lambda: tl.with_without(terms, "l2", net["named"])):
        with pytest.raises(RuntimeError, match=r"freed by an earlier backward\(\); call .* before "
                                               r"loss.backward\(\), or call loss.backward\(retain_graph=True\)"):
            trace()


def test_tracing_after_a_backward_with_retain_graph_works_and_leaves_grads_alone():
    net = three_layer_network()
    net["loss"].backward(retain_graph=True)
    before = net["named"]["W1"].grad.copy()
    traced = tl.with_without({"data": net["cost"], "l2": net["penalty"]}, "l2", net["named"])
    assert traced.changed() == ["W1", "W2", "W3"]
    np.testing.assert_array_equal(net["named"]["W1"].grad, before)


def test_trace_results_show_as_html_and_rows():
    net = three_layer_network()
    traced = tl.trace_terms({"data": net["cost"], "l2": net["penalty"]}, net["named"])
    html = traced._repr_html_()
    assert "<caption>Gradient contribution of each loss term</caption>" in html
    assert html.count("<tr>") == 1 + len(net["named"])
    rows = {r["tensor"]: r for r in traced.to_rows()}
    assert rows["W1"]["l2 reaches"] and not rows["A1"]["l2 reaches"]
