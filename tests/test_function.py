"""The public custom-op API (tl.Function) and the engine's checks on what backward returns."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor


class Cube(tl.Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x ** 3

    def backward(self, grad):
        (x,) = self.saved_arrays
        return 3 * x ** 2 * grad


class Scale(tl.Function):
    """z = factor·a + b: two tensor inputs and a keyword attribute."""

    def forward(self, a, b):
        return self.factor * a + b

    def backward(self, grad):
        return self.factor * grad, grad


def returning(*grads, out=lambda a, *rest: a.copy()):
    """An op whose backward returns `grads` as given (callables get the incoming grad)."""
    class Bad(tl.Function):
        def forward(self, *arrays):
            return out(*arrays)

        def backward(self, grad):
            result = tuple(g(grad) if callable(g) else g for g in grads)
            return result[0] if len(result) == 1 and not isinstance(grads[0], tuple) else result
    return Bad


def test_a_custom_op_gradchecks_and_labels_its_node_with_its_class_name():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    assert tl.gradcheck(lambda t: Cube.apply(t), [x])
    y = Cube.apply(x)
    assert type(y) is Tensor and type(y.grad_fn) is Cube and y.grad_fn.label() == "Cube"
    assert 'label=Cube' in tl.draw_dot(y.sum()).source


def test_keyword_arguments_become_attributes_and_gradients_follow_them():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0]), requires_grad=True)  # broadcast: its gradient is summed back
    out = Scale.apply(a, b, factor=4.0)
    assert out.grad_fn.factor == 4.0
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [4.0, 4.0])
    np.testing.assert_array_equal(b.grad, [2.0])
    assert tl.gradcheck(lambda a, b: Scale.apply(a, b, factor=-1.5), [a, b])


def test_needs_input_grad_is_known_in_forward_and_backward():
    seen = []

    class Probe(tl.Function):
        def forward(self, a, b, scalar):
            seen.append(self.needs_input_grad)
            return a * b * scalar

        def backward(self, grad):
            seen.append(self.needs_input_grad)
            return grad, None, None

    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0])
    Probe.apply(a, b, 3.0).sum().backward()
    assert seen == [(True, False, False)] * 2
    with tl.no_grad():
        Probe.apply(a, b, 3.0)
    assert seen[-1] == (False, False, False)


def test_a_single_input_may_also_return_a_one_tuple_or_a_numpy_scalar():
    for result in (lambda g: (2 * g,), lambda g: np.float64(2.0) * g.sum()):
        class Op(tl.Function):
            def forward(self, x):
                return x.copy()

            def backward(self, grad, result=result):
                return result(grad)
        x = Tensor(np.array(1.5), requires_grad=True)
        Op.apply(x).backward()
        assert x.grad.shape == () and x.grad == 2.0 and isinstance(x.grad, np.ndarray)


@pytest.mark.parametrize("grads, shape, message", [
    ((lambda g: 2 * g, lambda g: g), (3,), None),  # the valid case
    ((lambda g: 2 * g,), (3,), "returned 1 gradients for 2 inputs"),
    ((lambda g: g, lambda g: g, lambda g: g), (3,), "returned 3 gradients for 2 inputs"),
    ((lambda g: np.ones((3, 2)), lambda g: g), (3, 4), r"shape \(3, 2\) for input 0 of shape \(3, 4\)"),
    ((lambda g: g, lambda g: np.ones((3, 5))), (3, 1), r"shape \(3, 5\) for input 1 of shape \(3, 1\)"),
    ((lambda g: [1.0, 2.0, 3.0], lambda g: g), (3,), "returned a list as the gradient of input 0"),
    ((lambda g: "grad", lambda g: g), (3,), "returned a str"),
    ((lambda g: g > 0, lambda g: g), (3,), "ndarray of dtype bool"),
    ((lambda g: Tensor(g), lambda g: g), (3,), "returned a Tensor"),
    ((lambda g: 2.0, lambda g: g), (3,), "returned a float"),
])
def test_backward_results_are_checked_and_errors_name_the_op(grads, shape, message):
    a = Tensor(np.ones(shape), requires_grad=True, name="a")
    b = Tensor(np.ones(shape), requires_grad=True, name="b")
    out = returning(*grads, out=lambda x, y: x + y)
    loss = out.apply(a, b).sum()
    if message is None:
        loss.backward()
        np.testing.assert_array_equal(a.grad, 2 * np.ones(shape))
        return
    with pytest.raises(TypeError, match="backward: Bad.backward " + ".*" + message):
        loss.backward()


def test_a_gradient_of_the_outputs_shape_is_summed_back_only_for_a_broadcast_input():
    out = returning(lambda g: g, out=lambda x: np.broadcast_to(x, (2, 3)).copy())
    x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)  # (1, 3) broadcast to (2, 3)
    out.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2.0, 2.0, 2.0]])
    reduce = returning(lambda g: g, out=lambda x: x.sum(keepdims=True))  # (1, 3) -> (1, 1)
    x = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    with pytest.raises(TypeError, match=r"shape \(1, 1\) for input 0 of shape \(1, 3\)"):
        reduce.apply(x).sum().backward()


def test_after_a_contract_error_no_leafs_grad_has_changed():
    good = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    good.grad = np.array([10.0, 10.0])
    fresh = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    bad = returning(lambda g: np.ones(5))
    loss = (good * 3).sum() + (fresh * 2).sum() + bad.apply(Tensor(np.ones(2), requires_grad=True)).sum()
    with pytest.raises(TypeError, match="Bad.backward"):
        loss.backward()
    np.testing.assert_array_equal(good.grad, [10.0, 10.0])
    assert fresh.grad is None


def test_gradients_are_cast_to_the_inputs_dtype():
    op = returning(lambda g: np.ones(g.shape, np.float64))
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    op.apply(x).sum().backward()
    assert x.grad.dtype == np.float32


def test_an_array_a_custom_op_keeps_is_never_written_into_by_accumulation():
    constant = np.array([1.0, 1.0])  # returned by backward every time: not ours to modify
    op = returning(lambda g: constant)
    x = Tensor(np.zeros(2), requires_grad=True)
    (op.apply(x) + op.apply(x) + x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])
    np.testing.assert_array_equal(constant, [1.0, 1.0])


def test_zero_d_gradients_summed_from_several_paths_are_exact():
    """Found by the program fuzzer: a gradient summed down to shape () is a numpy scalar,
    which cannot be accumulated in place; every path must still count."""
    x0 = Tensor(np.array(0.0), requires_grad=True)
    x2 = Tensor(np.array([[0.0]]), requires_grad=True)
    total = x0.sum() + (x2 + x0).sum() + (x0 * 0.3).sum()
    total.backward()
    assert x0.grad == 2.3 and x2.grad.shape == (1, 1)


def test_forward_must_return_a_numeric_array():
    class Listy(tl.Function):
        def forward(self, x):
            return x.tolist()
    with pytest.raises(TypeError, match="Listy.forward must return a numeric numpy array, got list"):
        Listy.apply(Tensor([1.0], requires_grad=True))


def test_apply_needs_a_tensor_and_an_op_without_backward_says_so():
    with pytest.raises(TypeError, match="Cube.apply: expected at least one Tensor argument"):
        Cube.apply(np.ones(2))

    class NoBackward(tl.Function):
        def forward(self, x):
            return x * 2
    with pytest.raises(NotImplementedError, match="NoBackward must define backward"):
        NoBackward.apply(Tensor([1.0], requires_grad=True)).sum().backward()


def test_integer_outputs_carry_no_gradient():
    class ArgMax(tl.Function):
        def forward(self, x):
            return np.asarray(np.argmax(x))
    out = ArgMax.apply(Tensor([1.0, 3.0, 2.0], requires_grad=True))
    assert out.item() == 1 and not out.requires_grad and out.grad_fn is None


def test_saved_arrays_are_released_after_backward():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = Cube.apply(x)
    node = y.grad_fn
    assert node.saved_arrays[0] is x.data and not x.data.flags.writeable
    y.sum().backward()
    assert node.saved_arrays is None and node.released and x.data.flags.writeable
