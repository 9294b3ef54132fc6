"""Every op gradchecked in float64 at several shapes (tests mirror tinygrad_l2/ops.py)."""
import itertools

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

SHAPES = [(), (2,), (3, 2), (1, 2)]


def leaf(rng, shape, positive=False, name=None):
    data = rng.standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return Tensor(np.asarray(data, dtype=np.float64), requires_grad=True, name=name)


def broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("sa,sb", [p for p in itertools.product(SHAPES, SHAPES) if broadcastable(*p)])
def test_binary_op_gradients_with_broadcasting_both_ways(op, sa, sb, rng):
    a, b = leaf(rng, sa), leaf(rng, sb, positive=(op == "div"))
    assert tl.gradcheck(BINARY[op], [a, b])


@pytest.mark.parametrize("op", BINARY)
def test_binary_op_with_python_scalar_and_numpy_array_on_either_side(op, rng):
    x = leaf(rng, (3, 2), positive=True)
    arr = np.abs(rng.standard_normal((1, 2))) + 1.0
    f = BINARY[op]
    for fn in (lambda x: f(x, 1.5), lambda x: f(1.5, x), lambda x: f(x, arr), lambda x: f(arr, x)):
        assert tl.gradcheck(fn, [x])
        assert isinstance(fn(x), Tensor)


UNARY = {
    "neg": (lambda x: -x, False),
    "exp": (lambda x: x.exp(), False),
    "log": (lambda x: x.log(), True),
    "sqrt": (lambda x: x.sqrt(), True),
    "relu": (lambda x: x.relu(), False),
    "sigmoid": (lambda x: x.sigmoid(), False),
    "tanh": (lambda x: x.tanh(), False),
    "abs": (lambda x: x.abs(), False),
    "square": (lambda x: x ** 2, False),
    "cube": (lambda x: x ** 3, False),
    "pow_fractional": (lambda x: x ** 1.5, True),
    "pow_negative": (lambda x: x ** -2, True),
}


@pytest.mark.parametrize("op", UNARY)
@pytest.mark.parametrize("shape", [(), (4,), (3, 2), (2, 1, 3)])
def test_unary_op_gradient(op, shape, rng):
    fn, positive = UNARY[op]
    x = leaf(rng, shape, positive=positive)
    if op in ("relu", "abs"):  # keep away from the kink at 0
        x.data = np.where(np.abs(x.data) < 0.1, 0.5, x.data)
    assert tl.gradcheck(fn, [x])


def test_sigmoid_is_finite_and_exact_at_extreme_inputs():
    x = Tensor(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]), requires_grad=True)
    y = x.sigmoid()
    assert np.all(np.isfinite(y.data))
    assert y.data[1] == pytest.approx(1 / (1 + np.exp(40.0)), rel=1e-15)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad))


AXES = [None, 0, 1, -1, (0, 1), (0, 2), (-1, 0)]


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradient_every_axis_and_keepdims(reduce, axis, keepdims, rng):
    x = leaf(rng, (2, 3, 4))
    assert tl.gradcheck(lambda x: getattr(x, reduce)(axis=axis, keepdims=keepdims), [x])
    expected = getattr(np, {"sum": "sum", "mean": "mean", "max": "max"}[reduce])(
        x.data, axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(getattr(x, reduce)(axis=axis, keepdims=keepdims).data, expected)


def test_max_splits_gradient_evenly_between_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [1, 0, 0]])


@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                   ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)),
                                   ((1, 2, 3), (4, 3, 2))])
def test_matmul_gradient_1d_2d_and_batched(sa, sb, rng):
    a, b = leaf(rng, sa), leaf(rng, sb)
    assert tl.gradcheck(lambda a, b: a @ b, [a, b])
    np.testing.assert_allclose((a @ b).data, a.data @ b.data)


@pytest.mark.parametrize("sa,sb", [((3,), (3, 4)), ((2, 3), (3,)), ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)),
                                   ((3,), (5, 3, 4)), ((5, 2, 3), (3,))])
@pytest.mark.parametrize("constant", ["a", "b"])
def test_matmul_gradient_with_one_constant_operand_of_any_rank(sa, sb, constant, rng):
    """Each gradient reads only the other operand: with one operand constant (a batched or 1-D
    input to a layer) the backward still knows every shape."""
    a, b = leaf(rng, sa), leaf(rng, sb)
    fixed = Tensor(a.data) if constant == "a" else Tensor(b.data)
    if constant == "a":
        assert tl.gradcheck(lambda b: fixed @ b, [b])
    else:
        assert tl.gradcheck(lambda a: a @ fixed, [a])


def test_matmul_with_numpy_array_on_the_left_gives_a_tensor(rng):
    w = leaf(rng, (3, 2))
    x = rng.standard_normal((4, 3))
    out = x @ w
    assert isinstance(out, Tensor) and out.shape == (4, 2)
    assert tl.gradcheck(lambda w: x @ w, [w])


@pytest.mark.parametrize("shape", [(6,), (3, 2), (2, -1), (1, 6, 1)])
def test_reshape_gradient(shape, rng):
    x = leaf(rng, (2, 3))
    assert tl.gradcheck(lambda x: x.reshape(*shape) * np.arange(6).reshape(x.reshape(*shape).shape), [x])


@pytest.mark.parametrize("axes", [(), (1, 0, 2), (2, 0, 1), (-1, 0, 1)])
def test_transpose_gradient(axes, rng):
    x = leaf(rng, (2, 3, 4))
    weights = rng.standard_normal(np.empty((2, 3, 4)).transpose(*(axes or (2, 1, 0))).shape)
    assert tl.gradcheck(lambda x: x.transpose(*axes) * weights, [x])


def test_dot_T_reverses_axes(rng):
    x = leaf(rng, (2, 3))
    assert x.T.shape == (3, 2)
    assert tl.gradcheck(lambda x: x.T @ np.ones((2, 1)), [x])


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_gradient(op, axis, rng):
    x = leaf(rng, (3, 4))
    assert tl.gradcheck(lambda x: getattr(x, op)(axis=axis), [x])


def test_log_softmax_is_stable_at_extreme_logits():
    x = Tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    out = x.log_softmax()
    np.testing.assert_allclose(out.data, [[0.0, -1000.0, -2000.0]])
    out[0, 1].backward()
    np.testing.assert_allclose(x.grad, [[-1.0, 1.0, 0.0]], atol=1e-300)
    np.testing.assert_allclose(Tensor([[1000.0, 1000.0]]).softmax().data, [[0.5, 0.5]])


@pytest.mark.parametrize("index", [1, slice(0, 2), (slice(None), 1), (Ellipsis, -1),
                                   ([0, 2, 0],), (np.array([0, 0, 2]), np.array([1, 1, 0])),
                                   (slice(None), [1, 1, 1])])
def test_index_gradient_scatters_back(index, rng):
    x = leaf(rng, (3, 2))
    assert tl.gradcheck(lambda x: x[index], [x])


def test_repeated_integer_indices_accumulate():
    x = Tensor(np.zeros(3), requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_index_with_an_integer_tensor():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[Tensor([3, 3], dtype=np.int64)].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 0, 2.0])


# ---- special points: dtype-overflowing constants, 0·inf and 0/0 (PyTorch's values) ------------

def test_mean_of_a_large_float16_tensor_has_the_right_gradient():
    x = Tensor(np.ones(70_000, np.float16), requires_grad=True)
    x.mean().backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_array_equal(x.grad, np.float16(1 / 70_000))
    y = Tensor(np.ones((2, 70_000), np.float16), requires_grad=True)
    y.mean(axis=1).sum().backward()
    np.testing.assert_array_equal(y.grad, np.float16(1 / 70_000))


def test_x_to_the_zero_has_zero_gradient_even_at_zero():
    x = Tensor(np.array([0.0, 2.0, -3.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("exponent, expected", [(1.0, 1.0), (2.0, 0.0), (3.0, 0.0), (0.5, np.inf)])
def test_powers_at_zero_follow_pytorch(exponent, expected):
    x = Tensor(np.array([0.0]), requires_grad=True)
    with np.errstate(divide="ignore"):
        (x ** exponent).sum().backward()
    assert x.grad[0] == expected


@pytest.mark.parametrize("op, expected", [(lambda t: t.relu(), 0.0), (lambda t: t.abs(), 0.0),
                                          (lambda t: t.sqrt(), np.inf), (lambda t: t.tanh(), 1.0),
                                          (lambda t: t.sigmoid(), 0.25), (lambda t: t.exp(), 1.0)])
def test_elementwise_gradients_at_zero_follow_pytorch(op, expected):
    x = Tensor(np.array([0.0]), requires_grad=True)
    with np.errstate(divide="ignore"):
        op(x).sum().backward()
    assert x.grad[0] == expected


NAN_GRADIENTS = {"relu": (lambda t: t.relu(), [1.0, 1.0, 0.0]),
                 "abs": (lambda t: t.abs(), [0.0, 1.0, -1.0])}


@pytest.mark.parametrize("op, expected", NAN_GRADIENTS.values(), ids=NAN_GRADIENTS.keys())
def test_gradients_at_nan_follow_pytorch(op, expected):
    """relu passes the gradient at NaN (threshold_backward: NaN <= 0 is false); abs' is
    sgn(NaN) = 0.  The other elements keep their ordinary gradients."""
    x = Tensor(np.array([np.nan, 2.0, -3.0]), requires_grad=True)
    op(x).sum().backward()
    np.testing.assert_array_equal(x.grad, expected)


@pytest.mark.parametrize("name", NAN_GRADIENTS)
def test_gradients_at_nan_are_torchs(name):
    torch = pytest.importorskip("torch")
    x = torch.tensor([float("nan"), 2.0, -3.0, 0.0], dtype=torch.float64, requires_grad=True)
    getattr(torch, name)(x).sum().backward()
    ours = Tensor(np.array([np.nan, 2.0, -3.0, 0.0]), requires_grad=True)
    NAN_GRADIENTS[name][0](ours).sum().backward()
    np.testing.assert_array_equal(ours.grad, x.grad.numpy())


def test_float16_ops_stay_float16_with_constants_in_range():
    x = Tensor(np.full(4, 2.0, np.float16), requires_grad=True)
    loss = ((x * 3.0 + 1.0) / 2.0 - 0.5).sigmoid().mean() + (x ** 2).sum() * 1e-3
    loss.backward()
    assert loss.dtype == np.float16 and x.grad.dtype == np.float16 and np.all(np.isfinite(x.grad))


# ---- empty and degenerate shapes: PyTorch's results or the op's own error ----------------------

@pytest.mark.parametrize("op", [lambda t: t.softmax(axis=1), lambda t: t.log_softmax(axis=1),
                                lambda t: t.softmax(axis=0), lambda t: t.sum(axis=1),
                                lambda t: t.exp(), lambda t: t.relu(), lambda t: t * 2.0,
                                lambda t: t.T, lambda t: t.reshape(0, 3)])
@pytest.mark.parametrize("shape", [(3, 0), (0, 3)])
def test_ops_over_empty_tensors_give_empty_results_and_gradients(op, shape):
    x = Tensor(np.zeros(shape), requires_grad=True)
    out = op(x)  # numpy's and PyTorch's results: no error
    assert out.size == 0 or out.shape == (3,)  # a sum over the empty axis is zeros
    out.sum().backward()
    assert x.grad.shape == shape and x.grad.size == 0


def test_max_over_a_non_empty_axis_of_an_empty_tensor_is_empty():
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    out = x.max(axis=1)
    assert out.shape == (0,)
    out.sum().backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_over_an_empty_axis_is_the_ops_own_error(reduce):
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    for call in (lambda: getattr(x, reduce)(axis=0), lambda: getattr(x, reduce)()):
        with pytest.raises(ValueError, match=f"{reduce}: cannot reduce over an empty axis"):
            call()


def test_bad_transpose_axes_name_the_op():
    x = Tensor(np.zeros((2, 3)))
    for axes in [(0, 5), (0, 0), (1,), (0, 1, 2)]:
        with pytest.raises(ValueError, match=r"transpose: axes .* are not a permutation"):
            x.transpose(*axes)


@pytest.mark.parametrize("shape", [(-2, 3), (-1, -1), (2.5, 2), (-3,)])
def test_reshape_refuses_invalid_sizes_like_pytorch(shape):
    with pytest.raises(ValueError, match="reshape: invalid shape"):
        Tensor(np.zeros(6)).reshape(*shape)


def test_min_is_values_only_and_splits_ties():
    x = Tensor(np.array([[1.0, 1.0, 3.0], [2.0, 0.0, 5.0]]), requires_grad=True)
    out = x.min(axis=1)
    np.testing.assert_array_equal(out.data, [1.0, 0.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_zero_where_is_np_where_bit_for_bit_for_any_gradient_and_mask(dtype):
    from tinygrad_l2.ops.elementwise import zero_where
    g = np.array([1.5, np.inf, np.nan, -2, 3, -0.0, -np.inf, 7], dtype)
    x = np.array([1, 0, 0, np.nan, -1, 2, -0.0, 5], dtype)
    cases = [(g, x <= 0), (g.reshape(2, 4)[:, ::2], (x <= 0).reshape(2, 4)[:, 1::2]),
             (g.reshape(2, 4), np.array([True, False, False, True])), (g[:1].reshape(()), np.True_)]
    for grad, drop in cases:
        want = np.where(drop, 0, grad).astype(dtype)
        written = grad.copy() if grad.shape == want.shape else np.empty_like(want)
        for got in (zero_where(grad, drop), zero_where(written, drop, out=written)):
            assert got.dtype == dtype and got.shape == want.shape
            assert np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_drops_any_gradient_to_plus_zero_and_passes_the_rest_bit_for_bit(dtype):
    """Where x <= 0 the gradient is +0 even if g is inf, NaN or −0 (np.where's result, not
    0·g's); elsewhere (x > 0 or NaN) it is g's exact bits."""
    x = Tensor(np.array([-1.0, 0.0, -2.0, -0.0, 3.0, np.nan, 4.0], dtype), requires_grad=True)
    g = np.array([np.inf, np.nan, -np.inf, -0.0, np.nan, -7.5, -0.0], dtype)
    x.relu().backward(g)
    want = np.where(np.array([True, True, True, True, False, False, False]), dtype(0), g)
    bits = f"u{np.dtype(dtype).itemsize}"
    np.testing.assert_array_equal(x.grad.view(bits), want.view(bits))
