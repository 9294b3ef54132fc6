"""Manual backprop vs autodiff, both conventions, several sizes and λ."""
import numpy as np
import pytest

from tinygrad_l2.lessons import manual
from tinygrad_l2.lessons.compare import compare_dlai, compare_nielsen
from tinygrad_l2.lessons.datasets import make_dataset


@pytest.mark.parametrize("layer_dims", [(2, 20, 3, 1), (2, 4, 1), (2, 8, 8, 8, 1)])
@pytest.mark.parametrize("lambd", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
def test_dlai_autodiff_agrees_with_manual_and_l2_changes_only_dw(layer_dims, lambd, cost):
    data = make_dataset(n_train=64, seed=1)
    table = compare_dlai(layer_dims, data.X_train.T, data.y_train[None].astype(float), lambd=lambd, cost=cost)
    assert table.max_difference() < 1e-12
    L = len(layer_dims) - 1
    assert len(table.to_rows()) == 4 * L and table.changed_by_l2() == ([f"dW{l}" for l in range(L, 0, -1)] if lambd else [])
    for row in table.to_rows():
        if row["gradient"].startswith("dW") and lambd:
            assert row["changed by L2"]
            assert row["Δ / W (= λ/m)"] == pytest.approx(lambd / 64, rel=1e-12)
        else:
            assert not row["changed by L2"] and row["max |Δ from L2|"] == 0


def test_dlai_table_prints_one_row_per_gradient():
    text = str(compare_dlai((2, 5, 1), lambd=0.7))
    for key in ("dA2", "dZ2", "dW2", "db2", "dA1", "dZ1", "dW1", "db1"):
        assert any(line.startswith(key + " ") for line in text.splitlines())


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
@pytest.mark.parametrize("sizes,lmbda", [((2, 8, 1), 5.0), ((2, 4, 3, 1), 0.0), ((2, 6, 1), 50.0)])
def test_nielsen_weights_agree_after_several_mini_batch_updates(cost, sizes, lmbda):
    table = compare_nielsen(sizes, cost=cost, lmbda=lmbda, eta=0.5, batch_size=16, epochs=2)
    assert table.updates >= 20
    assert table.max_difference() < 1e-12
    initial, _ = manual.nielsen_initialize(sizes, seed=0)
    for trained in (table.manual_weights, table.autodiff_weights):
        assert max(np.abs(w - w0).max() for w, w0 in zip(trained, initial)) > 1e-3  # they moved


def test_bad_arguments():
    with pytest.raises(ValueError, match="cost must be"):
        compare_nielsen(cost="hinge")
    with pytest.raises(ValueError, match="X has 2 features .* first layer size is 3"):
        compare_dlai((3, 2, 1))


def test_results_are_dataclasses_that_show_as_text_html_and_rows():
    import dataclasses
    result = compare_dlai((2, 4, 1), lambd=0.7)
    assert dataclasses.is_dataclass(result) and result.m == 200 and result.cost == "cross_entropy"
    html = result._repr_html_()
    assert html.startswith("<table><caption>deeplearning.ai convention")
    assert html.count("<tr>") == 1 + 8 and "<th>changed by L2</th>" in html
    assert str(result).splitlines()[0] == result.title
    nielsen = compare_nielsen((2, 3, 1), epochs=1)
    assert dataclasses.is_dataclass(nielsen) and "<td>w1</td>" in nielsen._repr_html_()


def test_the_comparison_keeps_its_graph_traceable_after_its_backward():
    import tinygrad_l2 as tl
    result = compare_dlai((2, 4, 1), lambd=0.7)
    graph = result.graph
    traced = tl.trace_terms({"data": graph["cost"], "l2": graph["penalty"]}, graph["tensors"])
    assert traced.reaches("l2", "W1") and not traced.reaches("l2", "A1")
    np.testing.assert_array_equal(graph["parameters"]["W1"].grad, result.autodiff["dW1"])


def test_every_function_that_takes_a_cost_name_refuses_an_unknown_one():
    from tinygrad_l2.lessons.compare import dlai_autodiff
    params = manual.dlai_initialize((2, 3, 1))
    X, Y = np.ones((2, 4)), np.ones((1, 4))
    AL, caches = manual.dlai_forward(X, params)
    calls = [lambda: compare_dlai((2, 3, 1), cost="hinge"), lambda: compare_nielsen(cost="hinge"),
             lambda: dlai_autodiff(params, X, Y, cost="hinge"),
             lambda: manual.dlai_cost(AL, Y, params, cost="hinge"),
             lambda: manual.dlai_backward(AL, Y, caches, cost="hinge"),
             lambda: manual.nielsen_delta("hinge", X, X, X)]
    for call in calls:
        with pytest.raises(ValueError, match="cost must be one of 'cross_entropy', 'quadratic', got 'hinge'"):
            call()
