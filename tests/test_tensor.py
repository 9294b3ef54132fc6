"""The Tensor contract: construction, dtypes, attributes and operator sugar."""
import operator

import numpy as np
import pytest

import tinygrad_l2 as tl
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


# ---- the Python protocol, as PyTorch -------------------------------------------------------

@pytest.mark.parametrize("data, truth", [([0.0], False), ([2.0], True), (0.0, False), (-1.0, True),
                                         ([[0.0]], False)])
def test_bool_of_one_element_is_its_truth_value(data, truth):
    assert bool(Tensor(data)) is truth


@pytest.mark.parametrize("data", [[0.0, 0.0], [1.0, 2.0], np.zeros((2, 2)), np.zeros(0)])
def test_bool_of_several_or_no_elements_is_ambiguous(data):
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(Tensor(data))


def test_float_int_and_index_of_one_element():
    assert float(Tensor([2.5])) == 2.5 and float(Tensor(1.5)) == 1.5
    assert int(Tensor([[3.9]])) == 3
    assert [10, 20, 30][Tensor(np.array(1), dtype=np.int64)] == 20
    with pytest.raises(TypeError, match="integer tensors"):
        [1, 2][Tensor(1.0)]
    with pytest.raises(ValueError, match="one element"):
        float(Tensor([1.0, 2.0]))


def test_iteration_yields_rows_and_a_0d_tensor_is_not_iterable():
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert len(rows) == 3 and all(isinstance(r, Tensor) for r in rows)
    np.testing.assert_array_equal(rows[2].data, [4.0, 5.0])
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(Tensor(5.0))
    with pytest.raises(TypeError, match="len"):
        len(Tensor(5.0))


def test_iterating_a_tensor_that_requires_grad_keeps_the_graph():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    sum(row.sum() * (i + 1) for i, row in enumerate(x)).backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [2.0, 2.0]])


def test_numpy_asarray_gives_the_numbers():
    t = Tensor(np.array([1.0, 2.0]))
    array = np.asarray(t)
    assert array.dtype == np.float64 and np.array_equal(array, [1.0, 2.0])
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert np.array(t, copy=True) is not t.data
    assert np.asarray([Tensor(1.0), Tensor(2.0)]).dtype == np.float32  # not an object array


def test_tolist_is_numpys():
    assert Tensor(np.array([[1.0, 2.0]])).tolist() == [[1.0, 2.0]]


# ---- .grad assignment is validated (PyTorch's rules) -----------------------------------------

def test_assigned_grad_must_have_exactly_the_tensors_shape():
    w = Tensor(np.zeros((2, 3)), requires_grad=True)
    for bad in (np.zeros(3), np.zeros((1, 3)), np.zeros((2, 3, 1))):
        with pytest.raises(ValueError, match=r"assigned grad has shape .* but the tensor has shape \(2, 3\)"):
            w.grad = bad
    assert w.grad is None


@pytest.mark.parametrize("bad", [[1.0, 2.0], "grad", np.array(["a", "b"]), np.array([True, False]),
                                 np.array([1 + 2j, 0j]), 3.0])
def test_assigned_grad_must_be_a_numeric_array(bad):
    w = Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(TypeError, match="assigned grad must be a numeric numpy array"):
        w.grad = bad


def test_assigned_grad_takes_the_tensors_dtype_and_accumulates():
    w = Tensor(np.zeros(2, np.float32), requires_grad=True)
    w.grad = np.array([1, 2])  # integers: converted, as PyTorch would refuse or cast
    assert w.grad.dtype == np.float32
    (w * 3.0).sum().backward()
    np.testing.assert_array_equal(w.grad, [4.0, 5.0])
    w.grad = Tensor(np.array([1.0, 1.0]))  # a Tensor's numbers
    assert w.grad.dtype == np.float32 and w.grad[0] == 1.0


def test_a_read_only_assigned_grad_is_replaced_not_written():
    w = Tensor(np.zeros(2), requires_grad=True)
    fixed = np.ones(2)
    fixed.flags.writeable = False
    w.grad = fixed
    (w * 2.0).sum().backward()
    np.testing.assert_array_equal(w.grad, [3.0, 3.0])
    np.testing.assert_array_equal(fixed, [1.0, 1.0])


# ---- dtype promotion: PyTorch's rules, not numpy's --------------------------------------------

def _ones(dtype, shape=(2,)):
    return Tensor(np.ones(shape, dtype=dtype), dtype=dtype)


PROMOTIONS = [  # (left, right, result): tensors of (dtype, shape), or a scalar
    ((np.int64, (2,)), (np.float32, (2,)), np.float32),
    ((np.int32, (2,)), (np.float64, (2,)), np.float64),
    ((np.float32, (2,)), (np.float64, ()), np.float32),   # a 0-d tensor does not upcast
    ((np.float64, ()), (np.float32, (2,)), np.float32),
    ((np.int64, (2,)), (np.float64, ()), np.float64),     # ... unless its category is higher
    ((np.float32, (2,)), (np.float64, (2,)), np.float64),
    ((np.float32, ()), (np.float64, ()), np.float64),
    ((np.float32, (2,)), np.float64(0.1), np.float32),    # a numpy scalar is weak
    ((np.float32, (2,)), np.array(0.1), np.float32),
    ((np.float16, (2,)), 0.1, np.float16),
    ((np.int64, (2,)), 0.5, np.float32),                  # an int tensor and a float: float32
    ((np.int64, (2,)), np.float64(0.5), np.float32),
    ((np.int64, (2,)), 3, np.int64),
    ((np.int32, (2,)), np.int64(3), np.int32),
]


def _operand(spec):
    return _ones(*spec) if isinstance(spec, tuple) else spec


@pytest.mark.parametrize("left, right, result", PROMOTIONS)
@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul], ids=["add", "sub", "mul"])
def test_binary_ops_promote_dtypes_as_pytorch_on_either_side(left, right, result, op):
    a, b = _operand(left), _operand(right)
    assert op(a, b).dtype == result and op(b, a).dtype == result


@pytest.mark.parametrize("left, right, result", PROMOTIONS)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv"])
def test_the_promotion_table_is_torchs(left, right, result, op):
    torch = pytest.importorskip("torch")

    def theirs(spec):
        if not isinstance(spec, tuple):
            return spec.item() if isinstance(spec, np.ndarray) else spec
        return torch.from_numpy(np.ones(spec[1], dtype=spec[0]))
    expected = getattr(theirs(left), f"__{op}__")(theirs(right)).dtype
    ours = getattr(_operand(left), f"__{op}__")(_operand(right)).dtype
    assert str(expected).removeprefix("torch.") == ours.name


def test_integer_true_division_is_float32():
    assert (_ones(np.int64) / 2).dtype == np.float32 and (1 / _ones(np.int64)).dtype == np.float32
    assert (_ones(np.int64) / _ones(np.int64)).dtype == np.float32


def test_a_float32_model_is_never_upcast_by_numpy_hyper_parameters():
    lam, scale = np.float64(0.01), np.logspace(-3, -1, 3)[1]  # a sweep's values: numpy float64
    model = tl.nn.Linear(3, 2, kernel_regularizer=tl.nn.L2(lam), rng=0)
    x = Tensor(np.ones((4, 3), dtype=np.float32))
    loss = (model(x) * scale).sum() + lam * (model.weight ** 2).sum() + model.regularization_loss()
    assert loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_a_float64_zero_dim_tensor_requiring_grad_gets_a_float64_gradient_through_a_float32_op():
    scale = Tensor(np.array(2.0), requires_grad=True)
    w = Tensor(np.array([1.0, 3.0], dtype=np.float32), requires_grad=True)
    out = w * scale
    assert out.dtype == np.float32
    out.sum().backward()
    assert scale.grad.dtype == np.float64 and scale.grad == 4.0
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])


def test_an_integer_tensor_times_a_float32_parameter_has_the_parameters_gradient():
    x = tl.tensor([[1, 2], [3, 4]])
    w = Tensor(np.array([0.5, -1.0], dtype=np.float32), requires_grad=True)
    (x * w).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad, [4.0, 6.0])


@pytest.mark.parametrize("call, match", [
    (lambda x: x.reshape(-1, -1), r"reshape: invalid shape \(-1, -1\) for a tensor of shape \(2, 3\)"),
    (lambda x: x.reshape(-2, 3), r"reshape: invalid shape \(-2, 3\) for a tensor of shape \(2, 3\)"),
    (lambda x: x.reshape(4, 2), r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    (lambda x: x * np.array(["a"]), r"mul: expected float or integer numbers, got strings"),
    (lambda x: x * [[1.0, 2.0], [3.0]], r"mul: data must be a rectangular nested list"),
    (lambda x: x - [[1, 2], [3]], r"sub: data must be a rectangular nested list"),
    (lambda x: x * "a", r"mul: unsupported operand str 'a'"),
    (lambda x: x * Tensor(np.ones((3, 2))), r"mul: shapes \(2, 3\) and \(3, 2\)"),
])
def test_errors_name_the_op_and_the_shapes(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call(Tensor(np.ones((2, 3))))
