"""Pooling with padding, dilation, ceil_mode and count_include_pad, and adaptive average
pooling: gradients against finite differences, window sizes by hand, clear errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.nn import functional as F

rng = np.random.default_rng(9)


def no_ties(shape):
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1


@pytest.mark.parametrize("pool, kwargs", [
    (F.max_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (F.max_pool2d, dict(kernel_size=2, stride=1, dilation=2)),
    (F.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (F.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (F.adaptive_avg_pool2d, dict(output_size=(3, 2))),
])
def test_pooling_gradients_match_finite_differences(pool, kwargs):
    assert tl.gradcheck(lambda x: pool(x, **kwargs), [Tensor(no_ties((2, 2, 7, 6)), requires_grad=True)])


def test_count_include_pad_decides_the_divisor_of_a_border_window():
    x = Tensor(np.ones((1, 1, 2, 2)))
    with_pad = F.avg_pool2d(x, 2, stride=2, padding=1).data[0, 0]
    without = F.avg_pool2d(x, 2, stride=2, padding=1, count_include_pad=False).data[0, 0]
    np.testing.assert_array_equal(with_pad, np.full((2, 2), 0.25))  # 1 input element in a 2×2 window
    np.testing.assert_array_equal(without, np.ones((2, 2)))


def test_ceil_mode_keeps_the_partial_last_window():
    x = Tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    assert F.max_pool2d(x, 2).shape == (1, 1, 2, 2)
    out = F.max_pool2d(x, 2, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3) and out.data[0, 0, 2, 2] == 24.0
    assert F.avg_pool2d(x, 2, ceil_mode=True).data[0, 0, 2, 2] == 24.0  # a 1×1 window: divisor 1


def test_max_pool_never_picks_the_padding():
    x = Tensor(-np.ones((1, 1, 3, 3)) - 5, requires_grad=True)
    out = F.max_pool2d(x, 3, stride=1, padding=1)
    np.testing.assert_array_equal(out.data, np.full((1, 1, 3, 3), -6.0))
    out.sum().backward()
    assert x.grad.sum() == 9.0


def test_global_average_pooling_is_the_spatial_mean():
    x = rng.standard_normal((2, 3, 5, 7))
    out = tl.nn.AdaptiveAvgPool2d(1)(Tensor(x))
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out.data[..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-14)


@pytest.mark.parametrize("make, message", [
    (lambda: tl.nn.MaxPool2d(3, padding=2), r"MaxPool2d: padding must be .* at most half the kernel \(3, 3\)"),
    (lambda: tl.nn.AvgPool2d(2, padding=-1), "AvgPool2d: padding must be an int >= 0"),
    (lambda: F.avg_pool2d(Tensor(np.zeros((1, 1, 4, 4))), 2, divisor_override=0), "divisor_override must be a positive int"),
    (lambda: F.max_pool2d(Tensor(np.zeros((1, 1, 2, 2))), 3, padding=1, dilation=2),
     r"max_pool2d: kernel \(3, 3\) is larger than the input's \(2, 2\) .* the output would be 0×0"),
    (lambda: tl.nn.AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d: output_size must be a positive int"),
])
def test_bad_pooling_arguments_get_a_clear_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def max_pool_loops(x, k, s, p, ceil_mode):
    """Max pooling as loops over the output size PyTorch's formula gives (square geometry)."""
    n = x.shape[2]
    out = (n + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    result = np.empty(x.shape[:2] + (out, out))
    for i in range(out):
        for j in range(out):
            r0, c0 = max(i * s - p, 0), max(j * s - p, 0)
            result[:, :, i, j] = x[:, :, r0:i * s - p + k, c0:j * s - p + k].max(axis=(2, 3))
    return result


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 3), data=st.data(), ceil_mode=st.booleans(), n=st.integers(4, 8))
def test_any_max_pool_geometry_equals_the_loops(k, s, data, ceil_mode, n):
    p = data.draw(st.integers(0, k // 2))
    x = no_ties((1, 2, n, n))
    out = F.max_pool2d(Tensor(x), k, s, p, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(out.data, max_pool_loops(x, k, s, p, ceil_mode))


def max_pool_argmax_loops(x, g, k, s, p, d, rows, cols):
    """(z, dx) window by window: numpy's argmax of each window of the −∞-padded input (the first
    maximum in row-major order; a NaN wins, the first one), g sent to it."""
    pad = (rows - 1) * s + d * (k - 1) + 1 - x.shape[2] - p
    xp = np.pad(x, ((0, 0), (0, 0), (p, max(p, pad)), (p, max(p, pad))), constant_values=-np.inf)
    out, grad = np.empty(g.shape), np.zeros(xp.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(rows):
                for j in range(cols):
                    window = xp[n, c, i * s:i * s + d * (k - 1) + 1:d, j * s:j * s + d * (k - 1) + 1:d]
                    a, b = np.unravel_index(window.argmax(), window.shape)
                    out[n, c, i, j] = window[a, b]
                    grad[n, c, i * s + a * d, j * s + b * d] += g[n, c, i, j]
    return out, grad[:, :, p:p + x.shape[2], p:p + x.shape[3]]


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 3), s=st.integers(1, 3), d=st.integers(1, 2), data=st.data(),
       ceil_mode=st.booleans(), n=st.integers(5, 7), seed=st.integers(0, 99))
def test_any_max_pool_geometry_picks_and_differentiates_as_argmax(k, s, d, data, ceil_mode, n, seed):
    """Ties (values from {−0, 0, 1, 2}), NaNs and overlapping windows included: each window's
    first maximum in row-major order (the first NaN), its sign of zero kept, g summed there."""
    p = data.draw(st.integers(0, k // 2))
    r = np.random.default_rng(seed)
    x = r.choice(np.array([-0.0, 0.0, 1.0, 2.0, np.nan]), size=(2, 2, n, n), p=[.3, .3, .2, .15, .05])
    xt = Tensor(x, requires_grad=True)
    out = F.max_pool2d(xt, k, s, p, dilation=d, ceil_mode=ceil_mode)
    g = r.standard_normal(out.shape)
    out.backward(g)
    want, want_grad = max_pool_argmax_loops(x, g, k, s, p, d, *out.shape[2:])
    np.testing.assert_array_equal(out.data, want)
    np.testing.assert_array_equal(np.signbit(out.data), np.signbit(want))
    np.testing.assert_allclose(xt.grad, want_grad, rtol=1e-12, atol=1e-12)
