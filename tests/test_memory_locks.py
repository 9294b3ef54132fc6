"""Saved arrays cannot change under the graph's feet: every way the API allows mutation (memory.py)."""
import gc

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2 import memory

READ_ONLY = "read-only"


@pytest.fixture(autouse=True)
def no_leaked_locks():
    yield
    gc.collect()
    assert memory.held_count() == 0


def graph():
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True, name="w")
    x = Tensor(np.array([0.5, -1.0, 2.0]), name="x")
    loss = (w * x).sum() + (w ** 2).sum()
    return w, x, loss


def expected_grad(w, x):
    return x + 2 * w


def test_raw_write_to_saved_data_raises_until_backward():
    w, x, loss = graph()
    with pytest.raises(ValueError, match=READ_ONLY):
        w.data[0] = 100.0
    with pytest.raises(ValueError, match=READ_ONLY):
        w.numpy()[...] = 0.0
    with pytest.raises(ValueError, match=READ_ONLY):
        np.add(w.data, 1, out=w.data)
    loss.backward()
    np.testing.assert_array_equal(w.grad, expected_grad(np.array([1.0, 2, 3]), x.data))
    w.data[0] = 100.0  # the graph no longer needs it: writable again
    assert w.data[0] == 100.0


def test_augmented_assignment_on_data_raises_while_saved():
    w, x, loss = graph()
    with pytest.raises(ValueError, match=READ_ONLY):
        w.data += 1.0
    with pytest.raises(ValueError, match=READ_ONLY):
        x.data *= 2.0  # inputs are protected too


def test_replacing_data_keeps_backward_exactly_right():
    w, x, loss = graph()
    original = w.data.copy()
    w.data = np.zeros(3)
    x.data = np.ones(3)
    loss.backward()
    np.testing.assert_array_equal(w.grad, expected_grad(original, np.array([0.5, -1.0, 2.0])))


def test_tensor_plus_equals_rebinds_and_leaves_the_graph_alone():
    w, x, loss = graph()
    w2 = w
    w2 += 1.0
    assert w2 is not w
    loss.backward()
    np.testing.assert_array_equal(w.grad, expected_grad(w.data, x.data))


def test_optimizer_step_before_second_backward_keeps_gradients_exact():
    w, x, loss = graph()
    loss.backward(retain_graph=True)
    first = w.grad.copy()
    tl.optim.SGD([w], lr=0.1, momentum=0.9).step()  # w's array is still saved: step copies
    assert not np.array_equal(w.data, [1.0, 2.0, 3.0])
    w.grad = None
    loss.backward()
    np.testing.assert_array_equal(w.grad, first)


@pytest.mark.parametrize("make", [lambda ps: tl.optim.Adam(ps), lambda ps: tl.optim.AdamW(ps)])
def test_adam_steps_never_write_into_a_saved_array(make):
    w, x, loss = graph()
    loss.backward(retain_graph=True)
    first = w.grad.copy()
    make([w]).step()
    w.grad = None
    loss.backward()
    np.testing.assert_array_equal(w.grad, first)


def test_optimizer_updates_in_place_once_the_graph_is_done():
    w, x, loss = graph()
    loss.backward()
    before = w.data
    tl.optim.SGD([w], lr=0.1).step()
    assert w.data is before  # no copy: in place


def test_load_state_dict_during_a_live_graph_keeps_backward_right():
    layer = tl.nn.Linear(3, 2, dtype=np.float64, rng=0)
    x = np.ones((1, 3))
    out = layer(x)
    value = out.data.copy()
    layer.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2)})
    (out * out).sum().backward()
    np.testing.assert_array_equal(layer.weight.data, 0.0)
    np.testing.assert_array_equal(out.data, value)
    np.testing.assert_array_equal(layer.weight.grad, 2 * value.T @ x)  # at the old weights


def test_user_numpy_array_shared_with_a_tensor_is_protected():
    array = np.array([1.0, 2.0])
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    loss = (w * Tensor(array)).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        array[0] = 5.0
    loss.backward()
    array[0] = 5.0


def test_a_transposed_view_protects_the_weight_it_views():
    layer = tl.nn.Linear(2, 2, rng=0)
    x = Tensor(np.ones((1, 2), np.float32), requires_grad=True)  # dx needs W.T: it is saved
    out = layer(x).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        layer.weight.data[0, 0] = 9.0
    out.backward()


def test_saved_outputs_are_protected():
    w = Tensor(np.array([0.1, 0.2]), requires_grad=True)
    y = w.exp()  # Exp saves its output
    loss = y.sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        y.data[0] = 0.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, np.exp([0.1, 0.2]))


def test_dropping_a_graph_without_backward_unlocks_without_gc():
    gc.disable()
    try:
        w, x, loss = graph()
        del loss
        w.data[0] = 7.0
        x.data[0] = 7.0
    finally:
        gc.enable()


def test_two_graphs_saving_one_array_unlock_when_both_are_done():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a, b = (w * w).sum(), (w ** 3).sum()
    a.backward()
    with pytest.raises(ValueError, match=READ_ONLY):
        w.data[0] = 0.0
    b.backward()
    w.data[0] = 0.0


def test_an_array_that_was_read_only_stays_read_only():
    array = np.array([1.0, 2.0])
    array.flags.writeable = False
    w = Tensor(array, requires_grad=True)
    (w * w).sum().backward()
    assert not array.flags.writeable


def test_no_grad_saves_nothing_and_locks_nothing():
    w = Tensor(np.array([1.0]), requires_grad=True)
    with tl.no_grad():
        y = w * w
    w.data[0] = 3.0
    assert y.data[0] == 1.0
