"""tl.tensor, zeros, ones, full, randn, rand, arange, eye, *_like; maximum, minimum, where, cat,
stack: PyTorch's names, defaults and gradients (PyTorch 2.13's values written out)."""
import numpy as np
import pytest

import tinygrad_l2 as tl

rng = np.random.default_rng(0)


def test_creation_defaults_are_float32_and_accept_varargs_or_a_tuple():
    for t in (tl.zeros(2, 3), tl.zeros((2, 3)), tl.ones([2, 3]), tl.full((2, 3), 7.0),
              tl.randn(2, 3), tl.rand(2, 3)):
        assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
    assert tl.full((2,), 7).data.tolist() == [7.0, 7.0]
    assert tl.eye(3).data.trace() == 3.0 and tl.eye(2, dtype=np.float64).dtype == np.float64
    w = tl.zeros(2, requires_grad=True, dtype=np.float64)
    assert w.requires_grad and w.dtype == np.float64
    with pytest.raises(ValueError, match="zeros: sizes must be integers >= 0"):
        tl.zeros(2, -1)


def test_arange_follows_pytorchs_dtypes():
    assert tl.arange(5).dtype == np.int64 and tl.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert tl.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert tl.arange(0.0, 1.0, 0.25).dtype == np.float32
    with pytest.raises(ValueError, match="step must be nonzero"):
        tl.arange(0, 3, 0)


def test_tensor_copies_and_like_functions_keep_dtype():
    array = np.array([1.0, 2.0])
    t = tl.tensor(array, requires_grad=True, name="t")
    array[0] = 9.0
    assert t.data[0] == 1.0 and t.name == "t" and t.dtype == np.float64
    assert tl.zeros_like(t).dtype == np.float64 and tl.ones_like(t).data.tolist() == [1.0, 1.0]


def test_random_creation_follows_manual_seed():
    tl.manual_seed(4)
    first = (tl.randn(3).data, tl.rand(3).data)
    tl.manual_seed(4)
    np.testing.assert_array_equal(tl.randn(3).data, first[0])
    np.testing.assert_array_equal(tl.rand(3).data, first[1])
    assert np.all((first[1] >= 0) & (first[1] < 1))


def test_maximum_and_minimum_split_ties_like_torch():
    a = tl.tensor([1.0, 2.0, 3.0], requires_grad=True, dtype=np.float64)
    b = tl.tensor([3.0, 2.0, 1.0], requires_grad=True, dtype=np.float64)
    tl.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.0, 0.5, 1.0] and b.grad.tolist() == [1.0, 0.5, 0.0]
    a.grad = b.grad = None
    tl.minimum(a, b).sum().backward()
    assert a.grad.tolist() == [1.0, 0.5, 0.0] and b.grad.tolist() == [0.0, 0.5, 1.0]


def test_maximum_broadcasts_and_gradchecks():
    a = tl.Tensor(rng.standard_normal((3, 1)), requires_grad=True)
    b = tl.Tensor(rng.standard_normal((4,)), requires_grad=True)
    assert tl.gradcheck(lambda a, b: tl.maximum(a, b), [a, b])
    assert tl.gradcheck(lambda a, b: tl.minimum(a, b), [a, b])
    assert tl.gradcheck(lambda a: tl.maximum(a, 0.0), [a])  # relu, written another way


def test_where_sends_the_gradient_to_the_chosen_input():
    condition = np.array([[True, False, True]])
    a = tl.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tl.Tensor(rng.standard_normal((3,)), requires_grad=True)
    out = tl.where(condition, a, b)
    np.testing.assert_array_equal(out.data, np.where(condition, a.data, b.data))
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, np.broadcast_to(condition, (2, 3)) * 1.0)
    np.testing.assert_array_equal(b.grad, [0.0, 2.0, 0.0])  # b is chosen where the condition is False
    assert tl.gradcheck(lambda a, b: tl.where(condition, a, b), [a, b])
    x = tl.Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    tl.where(x > 0, x, 0.0).sum().backward()  # a Tensor mask and a scalar
    assert x.grad.tolist() == [0.0, 1.0]
    with pytest.raises(TypeError, match="condition must be boolean"):
        tl.where(np.array([1, 0]), x, x)


def test_cat_and_stack_split_the_gradient_back():
    a = tl.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tl.Tensor(rng.standard_normal((1, 3)), requires_grad=True)
    assert tl.cat([a, b]).shape == (3, 3) and tl.cat([a, a], dim=1).shape == (2, 6)
    assert tl.gradcheck(lambda a, b: tl.cat([a, b], axis=0) * 2.0, [a, b])
    assert tl.stack([a, a, a], dim=1).shape == (2, 3, 3)
    assert tl.gradcheck(lambda a: tl.stack([a, a * 3.0], axis=-1), [a])
    with pytest.raises(ValueError, match=r"cat: cannot join shapes \[\(2, 3\), \(2, 2\)\]"):
        tl.cat([a, tl.zeros(2, 2)])
    with pytest.raises(ValueError, match="stack: cannot stack shapes"):
        tl.stack([a, b])


@pytest.mark.parametrize("data, dtype", [([1, 2, 3], np.int64), ([1.0, 2.0], np.float32), (3, np.int64),
                                         ([1, 2.5], np.float32), (np.array([1, 2], dtype=np.int32), np.int32),
                                         (np.float64(2.0), np.float64), (np.arange(3, dtype=np.uint8), np.uint8)])
def test_tensor_infers_the_dtype_as_torch_tensor_does(data, dtype):
    """Integer labels stay int64 (a loss takes them); the Tensor constructor still makes float32."""
    assert tl.tensor(data).dtype == dtype
    assert tl.tensor(data, dtype=np.float64).dtype == np.float64


def test_tensor_of_integer_labels_feeds_cross_entropy():
    logits = tl.tensor([[2.0, 0.5], [0.1, 1.0]], requires_grad=True)
    labels = tl.tensor([0, 1])
    tl.nn.functional.cross_entropy(logits, labels).backward()
    assert labels.dtype == np.int64 and logits.grad.shape == (2, 2)


def test_tensor_dtypes_are_torchs():
    torch = pytest.importorskip("torch")
    names = {torch.int64: np.int64, torch.float32: np.float32, torch.float64: np.float64,
             torch.int32: np.int32}
    for data in ([1, 2, 3], [1.5, 2.0], 7, 2.5, np.array([1, 2], dtype=np.int32), np.float64(2.0),
                 [[1, 2], [3, 4]]):
        assert tl.tensor(data).dtype == names[torch.tensor(data).dtype], data


def test_an_integer_tensor_cannot_require_grad_as_in_torch():
    with pytest.raises(TypeError, match="only float tensors can require gradients"):
        tl.tensor([1, 2], requires_grad=True)
