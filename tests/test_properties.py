"""Property-based tests (hypothesis): broadcasting and reductions over random shapes."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.engine import unbroadcast

# distinct values at least 0.01 apart: max's kink stays far from the finite-difference step
SPACED = st.integers(-300, 300).map(lambda i: i / 100)


@settings(max_examples=60, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       op=st.sampled_from(["add", "sub", "mul", "div"]), seed=st.integers(0, 2**16))
def test_broadcasting_binary_ops_gradcheck_and_keep_each_operand_shape(shapes, op, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a = Tensor(rng.standard_normal(sa), requires_grad=True)
    b = Tensor(rng.uniform(0.5, 2.0, sb), requires_grad=True)
    fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
          "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[op]
    out = fn(a, b)
    assert out.shape == shapes.result_shape
    out.sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    assert tl.gradcheck(fn, [a, b])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_reductions_match_numpy_and_gradcheck(data):
    x = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
                             elements=SPACED, unique=True))
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1))
    keepdims = data.draw(st.booleans())
    reduce = data.draw(st.sampled_from(["sum", "mean", "max"]))
    t = Tensor(x, requires_grad=True)
    out = getattr(t, reduce)(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.data, getattr(np, reduce)(x, axis=axis, keepdims=keepdims))
    assert tl.gradcheck(lambda t: getattr(t, reduce)(axis=axis, keepdims=keepdims), [t])


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=4, max_side=4))
def test_unbroadcast_is_the_adjoint_of_broadcast_to(shapes):
    # <broadcast(x), g> == <x, unbroadcast(g)> for every x, g: the defining property
    rng = np.random.default_rng(0)
    (shape,) = shapes.input_shapes
    out_shape = np.broadcast_shapes(shape, shapes.result_shape)
    x, g = rng.standard_normal(shape), rng.standard_normal(out_shape)
    lhs = (np.broadcast_to(x, out_shape) * g).sum()
    rhs = (x * unbroadcast(g, shape)).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
    assert unbroadcast(g, shape).shape == shape
