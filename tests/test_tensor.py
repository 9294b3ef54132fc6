"""The Tensor contract: construction, dtypes, attributes and operator sugar."""
import numpy as np
import pytest

from tinygrad_l2 import Tensor


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_float_array_keeps_its_dtype(dtype):
    assert Tensor(np.ones(3, dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("data", [[1, 2], [[1.5, 2.0]], 3, 2.5, np.arange(3)])
def test_lists_ints_and_scalars_become_float32(data):
    assert Tensor(data).dtype == np.float32


def test_dtype_argument_overrides_default():
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor([1, 2], dtype="int64").dtype == np.int64


def test_attributes_follow_the_contract():
    t = Tensor([[1.0, 2.0, 3.0]], requires_grad=True, name="W")
    assert t.shape == (1, 3) and t.ndim == 2 and t.name == "W"
    assert isinstance(t.data, np.ndarray) and t.numpy() is t.data
    assert t.is_leaf and t.requires_grad and t.grad is None
    assert Tensor(4.0).item() == 4.0
    t.data = np.zeros((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(t.data, 0)
    t.grad = np.ones((1, 3))
    t.grad = None
    assert t.grad is None


def test_op_output_is_not_a_leaf_and_has_grad_fn():
    a = Tensor([1.0], requires_grad=True)
    b = a * 2
    assert not b.is_leaf and b.requires_grad and type(b.grad_fn).__name__ == "Mul"
    c = Tensor([1.0]) * 2
    assert c.is_leaf and not c.requires_grad


def test_python_scalar_never_upcasts_float32():
    x = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    for y in (x * 0.1, 0.1 * x, x + 1e-30, x / 3.0, 3.0 - x, x ** 2.0, x @ np.ones(2, np.float32)):
        assert y.dtype == np.float32
    (x * 0.1).sum().backward()
    assert x.grad.dtype == np.float32


def test_python_scalar_keeps_full_precision_with_float64():
    x = Tensor(np.ones(1, dtype=np.float64))
    assert (x * 0.1).data[0] == 0.1


def test_mixed_dtypes_follow_numpy_promotion_and_grads_keep_each_dtype():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.full(2, 3.0), requires_grad=True)
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_numpy_array_on_the_left_gives_a_tensor():
    t = Tensor([1.0, 2.0], requires_grad=True)
    for out in (np.ones(2) * t, np.ones(2) + t, np.ones(2) - t, np.ones(2) / t):
        assert isinstance(out, Tensor) and out.requires_grad


@pytest.mark.parametrize("bad,kind", [
    ("abc", TypeError), ([1, "a"], TypeError), ([[1, 2], [3]], ValueError),
    (np.array([1 + 2j]), TypeError), (np.array([object()]), TypeError), ([True, False], TypeError),
    (True, TypeError),
])
def test_constructor_rejects_what_is_not_a_float_or_integer_array(bad, kind):
    with pytest.raises(kind, match="Tensor"):
        Tensor(bad)


def test_requires_grad_on_an_integer_tensor_is_a_clear_error():
    with pytest.raises(TypeError, match="only float tensors can require gradients.*int64"):
        Tensor([1, 2], dtype=np.int64, requires_grad=True)


def test_pow_with_a_tensor_exponent_is_a_clear_error():
    x = Tensor([2.0])
    with pytest.raises(TypeError, match="pow: the exponent must be a Python or numpy scalar"):
        x ** Tensor([2.0])
    with pytest.raises(TypeError, match="pow"):
        2.0 ** x


def test_unsupported_operand_is_named():
    with pytest.raises(TypeError, match="mul: unsupported operand str"):
        Tensor([1.0]) * "x"


def test_item_on_many_elements_is_an_error():
    with pytest.raises(ValueError, match="item.*shape \\(2,\\)"):
        Tensor([1.0, 2.0]).item()


def test_detach_shares_data_and_cuts_the_graph():
    a = Tensor([1.0, 2.0], requires_grad=True)
    d = (a * 2).detach()
    assert d.is_leaf and not d.requires_grad
    out = (d * a).sum()
    out.backward()
    np.testing.assert_array_equal(a.grad, d.data)


def test_repr_shows_name_and_grad_fn():
    a = Tensor([1.0], requires_grad=True, name="w")
    assert "name='w'" in repr(a) and "requires_grad=True" in repr(a)
    assert "grad_fn=Mul" in repr(a * 2)
