"""The Tensor methods PyTorch users reach for: argmax, var/std, clamp, casts, flatten and
friends, dim=/keepdim=, and comparisons that return masks."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

rng = np.random.default_rng(1)


def test_argmax_and_argmin_are_int64_indices_without_gradient():
    x = Tensor(np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]]), requires_grad=True)
    assert x.argmax().item() == 3 and x.argmin().item() == 4  # flattened, first of ties
    assert x.argmax(dim=1).tolist() == [1, 0] and x.argmin(axis=0, keepdims=True).shape == (1, 3)
    assert x.argmax(dim=1).dtype == np.int64 and not x.argmax().requires_grad
    with pytest.raises(ValueError, match="argmax: axis 2 is out of range"):
        x.argmax(2)


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
def test_var_and_std_match_numpy_and_gradcheck(correction, axis):
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    np.testing.assert_allclose(x.var(axis, correction=correction).data,
                               np.var(x.data, axis=axis, ddof=correction), rtol=1e-12)
    np.testing.assert_allclose(x.std(dim=axis, correction=correction).data,
                               np.std(x.data, axis=axis, ddof=correction), rtol=1e-12)
    assert tl.gradcheck(lambda t: t.var(axis, correction=correction), [x])
    assert tl.gradcheck(lambda t: t.std(axis, correction=correction), [x])


def test_var_of_one_element_with_bessel_correction_is_nan_like_pytorch():
    assert np.isnan(Tensor(np.array([3.0])).var().item())


def test_clamp_gradient_is_one_inside_and_at_the_boundaries():
    x = Tensor(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), requires_grad=True)
    out = x.clamp(-1.0, 1.0)
    assert out.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # torch.clamp: boundaries pass
    x.grad = None
    x.clip(min=0.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="at least one of min and max"):
        x.clamp()


def test_casts_are_differentiable_and_cast_the_gradient_back():
    x = Tensor(np.array([1.5, 2.5]), requires_grad=True)  # float64
    y = x.float()
    assert y.dtype == np.float32 and x.double() is x
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [2.0, 2.0]
    assert x.astype(np.int64).dtype == np.int64 and x.pow(2).tolist() == [2.25, 6.25]


def test_shape_methods_follow_pytorch():
    x = Tensor(rng.standard_normal((2, 1, 3, 4)), requires_grad=True)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.flatten(1, 2).shape == (2, 3, 4) and Tensor(1.0).flatten().shape == (1,)
    assert x.squeeze().shape == (2, 3, 4) and x.squeeze(1).shape == (2, 3, 4)
    assert x.squeeze(0) is x  # not of size 1: unchanged, as PyTorch
    assert x.unsqueeze(0).shape == (1, 2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 1, 3, 4, 1)
    assert x.permute(3, 2, 1, 0).shape == (4, 3, 1, 2) and x.view(6, -1).shape == (6, 4)
    assert tl.gradcheck(lambda t: t.flatten(1).unsqueeze(0).permute(2, 0, 1), [x])
    with pytest.raises(ValueError, match="unsqueeze: dim 6 is out of range"):
        x.unsqueeze(6)
    with pytest.raises(ValueError, match="flatten: start_dim 2 comes after end_dim 1"):
        x.flatten(2, 1)


def test_every_reduction_takes_dim_and_keepdim():
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    for name in ("sum", "mean", "max", "min", "var", "std"):
        assert getattr(x, name)(dim=1, keepdim=True).shape == (2, 1)
        np.testing.assert_allclose(getattr(x, name)(dim=0).data, getattr(x, name)(axis=0).data)
    np.testing.assert_allclose(x.softmax(dim=0).data.sum(axis=0), 1.0)
    with pytest.raises(TypeError, match="give axis or dim, not both"):
        x.sum(axis=0, dim=1)


def test_comparisons_are_elementwise_masks_outside_the_graph():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    mask = x > 0
    assert mask.dtype == np.bool_ and not mask.requires_grad and mask.tolist() == [False, False, True]
    assert (x >= 0).tolist() == [False, True, True] and (x < 0).tolist() == [True, False, False]
    assert (x == Tensor(np.array([-1.0, 1.0, 2.0]))).tolist() == [True, False, True]
    assert (x != 0.0).tolist() == [True, False, True] and (x <= 2).tolist() == [True] * 3
    (x * (x > 0)).sum().backward()  # a mask in the graph: relu, by hand
    assert x.grad.tolist() == [0.0, 0.0, 1.0]
    assert (x == None) is False and x != "text"  # noqa: E711 - Python's fallback, no error
    assert {x: 1}[x] == 1 and hash(x) == object.__hash__(x)  # hashing stays by identity


def test_requires_grad_underscore_returns_the_tensor():
    x = Tensor(np.ones(2))
    assert x.requires_grad_() is x and x.requires_grad


# ---- size() as PyTorch, numel(), dim() ----------------------------------------------------------

def test_size_called_is_pytorchs_shape_and_dimension():
    x = tl.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(0) == 2 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3 and tl.tensor(5.0).size() == ()


def test_size_uncalled_is_still_numpys_element_count():
    x = tl.zeros(2, 3)
    assert x.size == 6 and x.size * 2 == 12 and int(x.size) == 6


@pytest.mark.parametrize("shape, dim", [((2, 3), 2), ((2, 3), -3), ((), 0)])
def test_size_of_a_dimension_out_of_range_is_an_index_error(shape, dim):
    with pytest.raises(IndexError, match="size: dim"):
        tl.zeros(*shape).size(dim)


def test_size_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = tl.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert ours.size() == tuple(theirs.size()) and ours.numel() == theirs.numel()
    assert [ours.size(d) for d in range(-3, 3)] == [theirs.size(d) for d in range(-3, 3)]
    assert ours.dim() == theirs.dim()
