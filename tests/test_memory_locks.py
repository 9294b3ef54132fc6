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


# ---- views and buffers: every way an array can share memory (issue: views defeat the lock) ---

VIEWS = {
    "reshape of arange": lambda: np.arange(1.0, 5.0).reshape(2, 2),
    "transpose": lambda: np.arange(1.0, 5.0).reshape(2, 2).T,
    "slice": lambda: np.arange(1.0, 9.0).reshape(4, 2)[1:3],
    "strided": lambda: np.arange(1.0, 9.0)[::2].reshape(2, 2),
    "foreign buffer": lambda: np.frombuffer(bytearray(np.arange(1.0, 5.0).tobytes()),
                                            dtype=np.float64).reshape(2, 2),
}


@pytest.mark.parametrize("make", VIEWS.values(), ids=VIEWS.keys())
def test_writes_through_data_are_refused_for_every_kind_of_view(make):
    w = Tensor(make(), requires_grad=True)
    expected = 2 * w.data.copy()
    loss = (w * w).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        w.data[0, 0] = 99.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, expected)


@pytest.mark.parametrize("make", VIEWS.values(), ids=VIEWS.keys())
def test_views_made_after_the_forward_are_refused_too(make):
    array = make()
    w = Tensor(array, requires_grad=True)
    loss = (w * w).sum()
    later = [array.reshape(-1), array[:1], w.data.T, w.numpy()[..., ::-1]]
    if isinstance(array.base, np.ndarray):
        later.append(array.base.reshape(-1))  # through the array that owns the memory
    later = [v for v in later if np.shares_memory(v, array)]  # reshape may copy instead
    assert len(later) >= 3
    for view in later:
        with pytest.raises(ValueError, match=READ_ONLY):
            view[0] = 99.0
    loss.backward()
    for view in (array, w.data, array[:1], w.numpy().T):
        view[0] = 5.0  # free again once the graph is done (views taken while it was locked
        # stay read-only: numpy copies the flag into each new view object)


def test_the_issues_example_gives_the_right_gradient():
    w = Tensor(np.arange(1.0, 5.0).reshape(2, 2), requires_grad=True)
    loss = (w * w).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        w.data[0, 0] = 99
    loss.backward()
    assert w.grad[0, 0] == 2.0


def test_the_owner_of_a_view_based_tensor_is_locked_and_restored():
    owner = np.arange(1.0, 7.0)
    w = Tensor(owner[1:5].reshape(2, 2), requires_grad=True)
    loss = (w ** 3).sum()
    with pytest.raises(ValueError, match=READ_ONLY):
        owner[2] = 0.0
    loss.backward()
    owner[2] = 0.0
    assert owner.flags.writeable and w.data.flags.writeable


def test_a_view_released_while_its_base_is_still_held_becomes_writable_with_the_base():
    base = np.arange(1.0, 5.0)
    view = base[:2]
    a = Tensor(view, requires_grad=True)
    b = Tensor(base, requires_grad=True)
    first, second = (a ** 3).sum(), (b ** 3).sum()  # the first saves the view, the second the base
    first.backward()
    with pytest.raises(ValueError, match=READ_ONLY):
        view[0] = 0.0  # its base is still held by the second graph
    second.backward()
    view[0] = 0.0
    base[3] = 0.0


def test_optimizer_step_between_forward_and_backward_on_a_view_backed_parameter():
    owner = np.arange(1.0, 5.0)
    w = Tensor(owner.reshape(2, 2), requires_grad=True)
    w.grad = np.ones((2, 2))
    loss = (w ** 3).sum()
    tl.optim.SGD([w], lr=0.1).step()  # must not write into memory the pending graph holds
    np.testing.assert_array_equal(owner, np.arange(1.0, 5.0))
    w.grad = None
    loss.backward()
    np.testing.assert_array_equal(w.grad, 3 * np.arange(1.0, 5.0).reshape(2, 2) ** 2)


def test_optimizer_copies_a_parameter_whose_memory_a_pending_graph_holds_through_another_view():
    owner = np.arange(1.0, 5.0)
    held = Tensor(owner[:2], requires_grad=True)
    loss = (held ** 3).sum()  # the graph holds owner's memory through a view
    p = Tensor(owner[2:], requires_grad=True)
    p.grad = np.ones(2)
    before = p.data
    tl.optim.SGD([p], lr=0.5).step()
    assert p.data is not before and np.array_equal(p.data, [2.5, 3.5])
    loss.backward()
    np.testing.assert_array_equal(held.grad, [3.0, 12.0])


def test_a_view_taken_before_the_forward_is_caught_by_detect_anomaly():
    owner = np.arange(1.0, 5.0)
    alias = owner.reshape(2, 2)  # taken before the forward: numpy cannot lock it
    w = Tensor(owner.reshape(2, 2), requires_grad=True, name="w")
    with tl.detect_anomaly():
        loss = (w * w).sum()
        alias[0, 0] = 99.0
        with pytest.raises(tl.AnomalyError, match=r"Mul saved for its backward \(tensor 'w'"):
            loss.backward()
    assert w.grad is None


def test_a_write_through_the_foreign_buffer_itself_is_caught_by_detect_anomaly():
    buffer = bytearray(np.arange(1.0, 3.0).tobytes())
    w = Tensor(np.frombuffer(buffer, dtype=np.float64), requires_grad=True)
    with tl.detect_anomaly():
        loss = (w ** 3).sum()
        buffer[:8] = np.float64(50.0).tobytes()
        with pytest.raises(tl.AnomalyError, match="Pow saved for its backward"):
            loss.backward()


# ---- memory numpy cannot make writable again (a torch tensor's .numpy()) ----------------------

class _ForeignMemory:
    """Another library's memory as numpy sees a torch tensor's `.numpy()`: an
    `__array_interface__` and no buffer protocol, so numpy cannot set WRITEABLE back to True."""

    def __init__(self, owner):
        self.__array_interface__ = owner.__array_interface__
        self.owner = owner


def foreign_array():
    array = np.asarray(_ForeignMemory(np.arange(1.0, 4.0)))
    assert array.base is not None and not array.flags.owndata  # numpy's own view of the object
    return array


@pytest.mark.parametrize("view", [lambda a: a, lambda a: a[1:]], ids=["array", "view of it"])
def test_backward_over_foreign_memory_neither_crashes_nor_leaves_it_locked(view):
    data = view(foreign_array())
    w = Tensor(data, requires_grad=True)
    loss = (w * w).sum()
    assert memory.is_held(data)  # counted as held: an optimizer copies instead of writing in
    loss.backward()
    np.testing.assert_array_equal(w.grad, 2 * data)
    assert data.flags.writeable and memory.held_count() == 0


def test_a_dropped_graph_over_foreign_memory_leaves_it_writable():
    data = foreign_array()
    w = Tensor(data, requires_grad=True)
    loss = (w * w).sum()
    del loss
    gc.collect()
    assert data.flags.writeable and memory.held_count() == 0


def test_an_optimizer_step_between_forward_and_backward_keeps_the_gradient_over_foreign_memory():
    data = foreign_array()
    w = Tensor(data, requires_grad=True)
    w.grad = np.ones(3)
    loss = (w * w).sum()
    tl.optim.SGD([w], lr=1.0).step()  # must not write into the memory the graph saved
    loss.backward()
    np.testing.assert_array_equal(w.grad, 1 + 2 * np.arange(1.0, 4.0))


def test_backward_over_a_torch_tensors_numpy_memory():
    torch = pytest.importorskip("torch")
    source = torch.arange(1.0, 4.0, dtype=torch.float64)
    data = source.numpy()
    w = Tensor(data, requires_grad=True)
    (w ** 3).sum().backward()
    np.testing.assert_array_equal(w.grad, 3 * data ** 2)
    data[0] = 7.0  # still writable, and still the torch tensor's memory
    assert source[0].item() == 7.0
