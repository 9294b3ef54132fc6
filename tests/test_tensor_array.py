"""TensorArray: numpy spellings mapped to Tensor ops, and everything else refused."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.ops.base import primitive
from tinygrad_l2.tensor_array import CreateGraphError, TensorArray


def wrapped(values):
    return TensorArray(Tensor(np.asarray(values, dtype=np.float64), requires_grad=True))


@pytest.mark.parametrize("index", [(np.array([0, 2, 0]),), (slice(1, None), 0),
                                   (np.arange(3), np.array([1, 0, 1]))])
def test_add_at_scatters_like_numpy_and_is_differentiable(index):
    value = np.arange(1.0, 1.0 + np.zeros((3, 2))[index].size).reshape(np.zeros((3, 2))[index].shape)
    expected = np.zeros((3, 2))
    np.add.at(expected, index, value)

    def scattered(v):
        target = np.zeros_like(TensorArray(v), shape=(3, 2))
        np.add.at(target, index, TensorArray(v))
        return target.tensor * target.tensor
    result = np.zeros_like(TensorArray(Tensor(value)), shape=(3, 2))
    np.add.at(result, index, TensorArray(Tensor(value)))
    np.testing.assert_array_equal(result.tensor.data, expected)
    assert tl.gradcheck(scattered, [Tensor(value, requires_grad=True)])


def test_index_assignment_replaces_the_selected_elements_only():
    target, value = wrapped([[1.0, 2.0], [3.0, 4.0]]), wrapped([7.0, 8.0])
    original = target.tensor
    target[:, 1] = value
    assert target.tensor.tolist() == [[1.0, 7.0], [3.0, 8.0]]
    g_original, g_value = tl.grad((target.tensor * np.array([[1.0, 2.0], [3.0, 4.0]])).sum(),
                                  [original, value.tensor])
    assert g_original.tolist() == [[1.0, 0.0], [3.0, 0.0]] and g_value.tolist() == [2.0, 4.0]


def test_comparisons_and_other_piecewise_constant_functions_give_plain_arrays():
    x = wrapped([-1.0, 0.0, 2.0])
    assert type(x <= 0) is np.ndarray and (x <= 0).tolist() == [True, True, False]
    assert np.sign(x).tolist() == [-1.0, 0.0, 1.0] and type(np.isnan(x)) is np.ndarray


def test_in_place_operators_rebind_to_a_new_tensor():
    x = wrapped([1.0, 2.0])
    y, before = x, x.tensor
    y *= 3
    assert y is x and x.tensor is not before and x.tensor.tolist() == [3.0, 6.0]
    assert before.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("use, what", [
    (np.asarray, "converts a gradient to a plain numpy array"),
    (float, "reads a gradient's value into Python"),
    (lambda x: np.add.reduce(x), "calls numpy's add.reduce"),
    (lambda x: np.cumsum(x), "calls numpy's cumsum, which has no Tensor form"),
    (lambda x: x.view(np.int64), "uses ndarray.view"),
    (lambda x: np.add(x, 1, out=np.zeros(1)), "writes a gradient into a plain array")])
def test_what_would_cut_the_graph_is_refused(use, what):
    with pytest.raises(CreateGraphError, match=what):
        use(wrapped([1.0]))


@primitive
def doubled(x):
    return 2 * x


def test_a_backward_calling_a_primitive_without_a_tensor_form_is_refused_by_name():
    class Double(tl.Function):
        def forward(self, x):
            return doubled(x)

        def backward(self, g):
            return doubled(g)
    x = Tensor(np.array([1.0]), requires_grad=True)
    assert tl.grad(Double.apply(x).sum(), [x])[0].tolist() == [2.0]
    with pytest.raises(CreateGraphError, match="Double's backward calls doubled, a helper with no "
                                               "Tensor form"):
        tl.grad(Double.apply(x).sum(), [x], create_graph=True)
