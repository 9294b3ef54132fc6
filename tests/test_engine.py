"""The backward engine: order, accumulation, retain_grad, no_grad, memory, and its errors."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import run_in_other_thread_while
from tinygrad_l2 import Tensor
from tinygrad_l2.engine import topological_order, unbroadcast


def test_unbroadcast_sums_leading_and_stretched_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(axis=0).sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, (2, 3, 4)) is g


def test_reused_node_diamond_gets_every_path():
    # micrograd #2/#64 and tinygrad #165: b = a + a; c = b * a
    a = Tensor(3.0, requires_grad=True)
    b = a + a
    c = b * a  # c = 2a², dc/da = 4a
    c.backward()
    assert a.grad == 12.0


def test_topological_order_puts_each_node_after_its_inputs():
    a = Tensor(1.0, requires_grad=True)
    x = a * 2
    y = x + a
    z = y * x
    order = topological_order(z)
    pos = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for p in node.parents:
            if p is not None and p.requires_grad:
                assert pos[id(p)] < pos[id(node)]
    assert order[-1] is z.grad_fn and order[0].tensor() is a and len(order) == 4


def test_graph_does_not_keep_unused_intermediate_data_alive():
    """As in PyTorch: the graph links op nodes, so an intermediate that no backward needs
    (the square inside sum(W**2)) is freed as soon as the user drops it."""
    import weakref
    w = Tensor(np.ones(4), requires_grad=True)
    square = w ** 2
    probe = weakref.ref(square)
    total = square.sum()
    del square
    assert probe() is None
    total.backward()
    np.testing.assert_array_equal(w.grad, 2 * np.ones(4))


def test_gradients_accumulate_across_backward_calls():
    w = Tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [3 + 2, 3 + 4])


def test_accumulation_does_not_alias_gradients_of_two_leaves():
    a = Tensor([1.0], requires_grad=True)
    b = Tensor([1.0], requires_grad=True)
    (a + b).sum().backward()
    (a * 5).sum().backward()
    np.testing.assert_array_equal(a.grad, [6.0])
    np.testing.assert_array_equal(b.grad, [1.0])


def test_user_seed_gradient_is_never_modified():
    a = Tensor([1.0, 2.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    (a + 0).backward(seed)
    (a * 3).sum().backward()
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_only_leaves_keep_grad_unless_retain_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    k = x * 4
    k.retain_grad()
    (h * k).sum().backward()
    with pytest.warns(UserWarning, match=r"not a leaf Tensor .* use \.retain_grad\(\)"):
        assert h.grad is None
    np.testing.assert_array_equal(k.grad, h.data)
    np.testing.assert_array_equal(x.grad, 2 * 12 * x.data)


def test_no_grad_builds_no_graph_and_restores_mode():
    x = Tensor([1.0], requires_grad=True)
    with tl.no_grad():
        y = x * 2
        assert not tl.is_grad_enabled()
        with tl.enable_grad():
            assert (x * 2).requires_grad
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_in_one_thread_leaves_another_thread_building_graphs():
    def builds_graph():
        return (Tensor([1.0], requires_grad=True) * 2).requires_grad

    assert run_in_other_thread_while(tl.no_grad(), builds_graph)
    with tl.no_grad():
        assert not builds_graph()


def test_chain_of_100k_ops_backpropagates_without_recursion():
    x = Tensor(np.float64(1.0), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_second_backward_without_retain_graph_is_a_clear_error():
    x = Tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = Tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [8.0])


def test_backward_frees_saved_arrays():
    x = Tensor([2.0], requires_grad=True)
    y = x * x
    z = y.sum()
    z.backward()
    assert y.grad_fn.saved_arrays is None and y.grad_fn.released


def test_backward_on_non_scalar_without_grad_says_a_scalar_is_needed():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for a scalar output.*shape \\(2,\\)"):
        (x * 2).backward()


def test_backward_with_grad_of_wrong_shape_names_both_shapes():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="grad has shape \\(3,\\) but the tensor has shape \\(2,\\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_tensor_without_graph_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(1.0).backward()


def test_backward_with_grad_seeds_vector_jacobian_product():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 40.0])


@pytest.mark.parametrize("make,match", [
    (lambda: Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 2))),
     r"matmul: shapes \(2, 3\) and \(4, 2\).*inner dimensions 3 and 4"),
    (lambda: Tensor(np.ones((2, 3))) + Tensor(np.ones((4,))),
     r"add: shapes \(2, 3\) and \(4,\).*not broadcastable"),
    (lambda: Tensor(np.ones((2, 3))) * np.ones((3, 3)), r"mul: shapes \(2, 3\) and \(3, 3\)"),
    (lambda: Tensor(np.ones((2, 3))).reshape(4, 2),
     r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"),
    (lambda: Tensor(np.ones((2, 3))).sum(axis=2), r"sum: axis 2 is out of range .*\(2, 3\)"),
    (lambda: Tensor(np.ones((2, 3))).mean(axis=(0, -3)), r"mean: axis \(0, -3\) is out of range"),
    (lambda: Tensor(np.ones((2, 3))).softmax(axis=2), r"softmax: axis 2 is out of range"),
    (lambda: Tensor(np.ones((2, 3))).transpose(0, 0), r"transpose: axes \(0, 0\) are not a permutation"),
    (lambda: Tensor(np.ones(2)) @ Tensor(3.0), r"matmul: operands must have at least one dimension"),
])
def test_bad_input_errors_name_the_op_and_shapes(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_failed_op_leaves_no_half_built_graph():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    good = (a * 2).sum()
    with pytest.raises(ValueError):
        a @ Tensor(np.ones((4, 2)))
    good.backward()
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 2.0))


def test_graph_has_no_reference_cycles():
    import gc
    import weakref
    gc.disable()
    try:
        x = Tensor(np.ones(3), requires_grad=True)
        y = ((x * 2).exp() + x).sum()
        probe = weakref.ref(y.grad_fn.parents[0])
        del y
        assert probe() is None  # freed by reference counting alone
    finally:
        gc.enable()


def test_a_leaf_switched_off_after_the_forward_receives_no_gradient():
    w = Tensor(np.array([1.0]), requires_grad=True)
    loss = (w * 2.0).sum()
    w.requires_grad = False
    loss.backward()
    assert w.grad is None


def test_data_replaced_by_another_shape_before_backward_is_an_error_and_writes_nothing():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    v = Tensor(np.array([3.0]), requires_grad=True)
    loss = (w * 2.0).sum() + (v * 5.0).sum()
    w.data = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"replaced by one of shape \(3,\) after the graph was built with shape \(2,\)"):
        loss.backward()
    assert w.grad is None and v.grad is None


def test_reading_a_non_leafs_grad_warns_as_pytorch_and_retained_or_leaf_grads_do_not(recwarn):
    x = Tensor([1.0, 2.0], requires_grad=True)
    h, k = x * 3, x * 4
    k.retain_grad()
    (h * k).sum().backward()
    x.grad, k.grad
    assert not recwarn.list
    with pytest.warns(UserWarning, match="won't be populated during backward") as caught:
        h.grad
    assert caught[0].filename == __file__  # points at the user's line, not the library's


def test_the_non_leaf_grad_warning_is_torchs():
    torch = pytest.importorskip("torch")
    h = torch.ones(2, requires_grad=True) * 3
    with pytest.warns(UserWarning) as theirs:
        h.grad
    with pytest.warns(UserWarning) as ours:
        (Tensor([1.0, 2.0], requires_grad=True) * 3).grad
    first_sentence = str(theirs[0].message).split(". ")[0]
    assert str(ours[0].message).startswith(first_sentence + ". ")


def test_grad_of_an_unused_input_is_an_error_unless_allowed_as_torch():
    x, unused = Tensor([1.0], requires_grad=True), Tensor([5.0, 6.0], requires_grad=True)
    loss = (x * 2).sum()
    with pytest.raises(RuntimeError, match="Tensor at index 1 appears to not have been used .* "
                                           "allow_unused=True"):
        tl.grad(loss, [x, unused], retain_graph=True)
    gx, gu = tl.grad(loss, [x, unused], retain_graph=True, allow_unused=True)
    assert gx.tolist() == [2.0] and gu is None
    gx, gu = tl.grad(loss, [x, unused], materialize_grads=True)
    assert gu.tolist() == [0.0, 0.0] and gu.dtype == unused.dtype
    with pytest.raises(ValueError, match="materialize_grads=True requires allow_unused"):
        tl.grad((x * 2).sum(), [x], allow_unused=False, materialize_grads=True)
