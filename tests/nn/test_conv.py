"""Convolution and pooling: against direct loops, finite differences and PyTorch's semantics."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_l2 as tl
from helpers import assert_machine_equal
from tinygrad_l2 import Tensor
from tinygrad_l2.nn import functional as F

rng = np.random.default_rng(0)


def conv_loops(x, w, b, stride, pads):
    """Cross-correlation written as loops: the definition."""
    (top, bottom), (left, right) = pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    rows, cols = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    out = np.zeros((n, o, rows, cols))
    for i in range(n):
        for k in range(o):
            for p in range(rows):
                for q in range(cols):
                    patch = x[i, :, p * stride[0]:p * stride[0] + kh, q * stride[1]:q * stride[1] + kw]
                    out[i, k, p, q] = (patch * w[k]).sum() + (b[k] if b is not None else 0.0)
    return out


CASES = [  # (input shape, weight shape, stride, padding, the pads it means)
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 0, ((0, 0), (0, 0))),
    ((1, 2, 7, 6), (3, 2, 3, 2), 2, 1, ((1, 1), (1, 1))),
    ((2, 1, 5, 5), (2, 1, 3, 3), 1, "same", ((1, 1), (1, 1))),
    ((1, 2, 6, 6), (2, 2, 4, 2), 1, "same", ((1, 2), (0, 1))),  # even: extra at bottom/right
    ((1, 3, 7, 8), (2, 3, 2, 3), (2, 3), (2, 1), ((2, 2), (1, 1))),
    ((2, 2, 4, 4), (1, 2, 4, 4), 1, "valid", ((0, 0), (0, 0))),
]


@pytest.mark.parametrize("xs, ws, stride, padding, pads", CASES)
def test_conv2d_equals_the_loop_definition(xs, ws, stride, padding, pads):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    out = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
    s = (stride, stride) if isinstance(stride, int) else stride
    assert_machine_equal(out.data, conv_loops(x, w, b, s, pads), ulps=16)


@pytest.mark.parametrize("xs, ws, stride, padding, pads", CASES)
def test_conv2d_gradients_match_finite_differences(xs, ws, stride, padding, pads):
    x = Tensor(rng.standard_normal(xs), requires_grad=True)
    w = Tensor(rng.standard_normal(ws), requires_grad=True)
    b = Tensor(rng.standard_normal(ws[0]), requires_grad=True)
    assert tl.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), [x, w, b])
    assert tl.gradcheck(lambda x, w: F.conv2d(x, w, stride=stride, padding=padding), [x, w])


def test_conv2d_errors_name_the_op_and_shapes():
    x, w = Tensor(np.zeros((1, 3, 5, 5))), Tensor(np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: weight of shape \(2, 2, 3, 3\) does not fit an input with 3 channels"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match="conv2d: padding='same' is not supported for strided"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 3))), stride=2, padding="same")
    with pytest.raises(ValueError, match="conv2d: input of shape|expected an input of shape"):
        F.conv2d(Tensor(np.zeros((3, 5, 5))), Tensor(np.zeros((2, 3, 3, 3))))
    with pytest.raises(ValueError, match="conv2d: stride must be a positive int"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 3))), stride=0)


def test_max_pool_sends_the_gradient_to_the_first_maximum_of_each_window():
    """PyTorch's CPU kernel keeps the first maximum in row-major order on ties."""
    x = Tensor(np.array([[[[1.0, 3.0, 3.0, 0.0],
                           [2.0, 3.0, 1.0, 1.0],
                           [0.0, 0.0, 2.0, 2.0],
                           [1.0, 0.0, 2.0, 1.0]]]]), requires_grad=True)
    out = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(out.data, [[[[3.0, 3.0], [1.0, 2.0]]]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 1), ((2, 3), (1, 2))])
def test_pooling_gradients_match_finite_differences(pool, kernel, stride):
    x = Tensor(rng.permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7) * 0.1, requires_grad=True)  # no ties
    assert tl.gradcheck(lambda x: pool(x, kernel, stride), [x])


def test_overlapping_max_windows_accumulate():
    x = Tensor(np.array([[[[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2, 1).sum().backward()
    assert x.grad[0, 0, 1, 1] == 4.0 and x.grad.sum() == 4.0


def test_avg_pool_is_the_window_mean():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(F.avg_pool2d(Tensor(x), 2).data, [[[[2.5, 4.5], [10.5, 12.5]]]])
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel \(5, 5\) is larger than the input"):
        F.avg_pool2d(Tensor(x), 5)


def test_conv2d_layer_has_pytorchs_shapes_init_and_regularizers():
    layer = tl.nn.Conv2d(3, 8, 5, padding="same", kernel_regularizer=tl.nn.L2(0.01), rng=0)
    assert layer.weight.shape == (8, 3, 5, 5) and layer.bias.shape == (8,)
    bound = 1 / np.sqrt(3 * 25)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert layer.weight.dtype == np.float32
    out = layer(np.ones((2, 3, 7, 7), np.float32))
    assert out.shape == (2, 8, 7, 7)
    penalty = layer.regularization_loss()
    assert penalty.item() == pytest.approx(0.01 * float((layer.weight.data.astype(np.float64) ** 2).sum()), rel=1e-6)
    penalty.backward()
    np.testing.assert_allclose(layer.weight.grad, 0.02 * layer.weight.data, rtol=1e-6)
    assert layer.bias.grad is None  # biases are not regularized unless asked


def test_a_convnet_draws_each_conv_as_a_cluster_with_its_kernel_feeding_l2():
    model = tl.nn.Sequential(tl.nn.Conv2d(1, 2, 3, padding="same", kernel_regularizer=tl.nn.L2(1e-3), rng=0),
                             tl.nn.ReLU(), tl.nn.MaxPool2d(2), tl.nn.Flatten(),
                             tl.nn.Linear(8, 3, kernel_regularizer=tl.nn.L2(1e-3), rng=1))
    x = np.ones((2, 1, 4, 4), np.float32)
    cost = tl.nn.softmax_cross_entropy(model(x), np.array([0, 2]))
    penalty = model.regularization_loss()
    source = tl.draw_dot(cost + penalty, params=dict(model.named_parameters()),
                         terms={"data": cost, "l2": penalty}, collapse_modules=False).source
    assert 'label="0: Conv2d"' in source and "label=Conv2d" in source
    l2_tails = {line.split("->")[0].strip() for line in source.splitlines()
                if "->" in line and "term-l2" in line}
    labels = dict(line.strip().split(" [label=", 1) for line in source.splitlines()
                  if " [label=" in line and "->" not in line)
    names = {labels[t].strip('"').split("\\n")[0] for t in l2_tails if t in labels}
    assert {"0.weight", "4.weight"} <= names and not names & {"0.bias", "4.bias"}


def grouped_dilated_loops(x, w, stride, dilation, groups):
    """Grouped, dilated cross-correlation as loops (no padding): the definition."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    rows = (h - dilation * (kh - 1) - 1) // stride + 1
    cols = (wd - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, rows, cols))
    for k in range(o):
        g = k // (o // groups)
        for p in range(rows):
            for q in range(cols):
                patch = x[:, g * cg:(g + 1) * cg, p * stride:p * stride + dilation * (kh - 1) + 1:dilation,
                          q * stride:q * stride + dilation * (kw - 1) + 1:dilation]
                out[:, k, p, q] = (patch * w[k]).sum(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("xs, ws, stride, dilation, groups", [
    ((2, 4, 9, 8), (6, 2, 3, 2), 1, 2, 2), ((1, 3, 8, 8), (3, 1, 3, 3), 2, 1, 3), ((1, 2, 9, 9), (4, 2, 2, 3), 1, 3, 1)])
def test_grouped_dilated_conv2d_equals_the_loops_and_finite_differences(xs, ws, stride, dilation, groups):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    out = F.conv2d(Tensor(x), Tensor(w), stride=stride, dilation=dilation, groups=groups)
    assert_machine_equal(out.data, grouped_dilated_loops(x, w, stride, dilation, groups), ulps=16)
    assert tl.gradcheck(lambda x, w: F.conv2d(x, w, stride=stride, padding=1, dilation=dilation, groups=groups),
                        [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)])


def test_depthwise_conv2d_keeps_channels_apart():
    x = np.zeros((1, 3, 4, 4))
    x[0, 1] = 1.0  # only channel 1 is non-zero
    layer = tl.nn.Conv2d(3, 3, 3, groups=3, bias=False, dtype=np.float64, rng=0)
    out = layer(Tensor(x)).data
    assert layer.weight.shape == (3, 1, 3, 3)
    assert np.all(out[0, [0, 2]] == 0) and np.all(out[0, 1] != 0)


@pytest.mark.parametrize("make, error, message", [
    (lambda: tl.nn.Conv2d(4, 6, 3, groups=4), ValueError, "out_channels must be divisible by groups, got out_channels=6 and groups=4"),
    (lambda: tl.nn.Conv2d(3, 6, 3, groups=2), ValueError, "in_channels must be divisible by groups"),
    (lambda: tl.nn.Conv2d(3, 6, 3, padding_mode="reflect"), ValueError, "padding_mode='reflect' is not supported: only 'zeros'"),
    (lambda: tl.nn.Conv2d(3, 6, 3, padding_mode="mirror"), ValueError, "PyTorch accepts 'zeros' or"),
    (lambda: tl.nn.Conv2d(3, 6, 3, dilation=0), ValueError, "Conv2d: dilation must be a positive int"),
    (lambda: F.conv2d(Tensor(np.zeros((1, 4, 5, 5))), Tensor(np.zeros((4, 4, 3, 3))), groups=2), ValueError,
     r"conv2d: weight of shape \(4, 4, 3, 3\) does not fit an input with 4 channels and groups=2 \(expected \(out, 2, kh, kw\)"),
    (lambda: F.conv2d(Tensor(np.zeros((1, 1, 5, 5))), Tensor(np.zeros((1, 1, 3, 3))), dilation=3), ValueError,
     r"conv2d: kernel \(3, 3\) \(dilation \(3, 3\): spanning \(7, 7\)\) is larger than the padded input \(5, 5\)"),
])
def test_conv2d_refuses_bad_groups_dilation_and_padding_modes(make, error, message):
    with pytest.raises(error, match=message):
        make()


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 3), per_group=st.integers(1, 2), out_per_group=st.integers(1, 2),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.integers(1, 2),
       dilation=st.integers(1, 3), extra=st.tuples(st.integers(0, 3), st.integers(0, 3)), seed=st.integers(0, 99))
def test_any_grouped_dilated_strided_conv_equals_the_loops(groups, per_group, out_per_group, kernel, stride,
                                                           dilation, extra, seed):
    """Every shape the loops can take: input just large enough for the dilated kernel, plus extra."""
    r = np.random.default_rng(seed)
    h, w = (dilation * (k - 1) + 1 + e for k, e in zip(kernel, extra))
    x = r.standard_normal((2, groups * per_group, h, w))
    weight = r.standard_normal((groups * out_per_group, per_group) + kernel)
    out = F.conv2d(Tensor(x), Tensor(weight), stride=stride, dilation=dilation, groups=groups)
    assert_machine_equal(out.data, grouped_dilated_loops(x, weight, stride, dilation, groups), ulps=16)


def conv_gradients_loops(x, w, g, stride, padding, dilation, groups):
    """(dx, dw) of Σ g·conv2d(x, w) by the definition: each output position's window, in turn."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    grad_xp, grad_w = np.zeros_like(xp), np.zeros_like(w)
    kh, kw = w.shape[2:]
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    for p in range(g.shape[2]):
        for q in range(g.shape[3]):
            rows = slice(p * stride, p * stride + dilation * (kh - 1) + 1, dilation)
            cols = slice(q * stride, q * stride + dilation * (kw - 1) + 1, dilation)
            for k in range(groups):
                ins, outs = slice(k * cg, (k + 1) * cg), slice(k * og, (k + 1) * og)
                grad_w[outs] += np.einsum("no,nchw->ochw", g[:, outs, p, q], xp[:, ins, rows, cols])
                grad_xp[:, ins, rows, cols] += np.einsum("no,ochw->nchw", g[:, outs, p, q], w[outs])
    return grad_xp[:, :, padding:padding + x.shape[2], padding:padding + x.shape[3]], grad_w


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 2), kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.integers(1, 2), dilation=st.integers(1, 2), padding=st.integers(0, 2),
       extra=st.tuples(st.integers(0, 3), st.integers(0, 3)), seed=st.integers(0, 99))
def test_any_conv_geometry_has_the_gradients_of_the_loops(groups, kernel, stride, dilation, padding, extra, seed):
    """The column-matrix products (stride 1: wide rows with garbage columns) against the definition."""
    r = np.random.default_rng(seed)
    h, wd = (max(dilation * (k - 1) + 1 - 2 * padding, 1) + e for k, e in zip(kernel, extra))
    x = Tensor(r.standard_normal((2, 2 * groups, h, wd)), requires_grad=True)
    w = Tensor(r.standard_normal((3 * groups, 2) + kernel), requires_grad=True)
    out = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    g = r.standard_normal(out.shape)
    out.backward(g)
    want_x, want_w = conv_gradients_loops(x.data, w.data, g, stride, padding, dilation, groups)
    assert_machine_equal(x.grad, want_x, ulps=16)
    assert_machine_equal(w.grad, want_w, ulps=16)


@pytest.mark.parametrize("where", ["input", "kernel"])
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_an_inf_or_nan_reaches_only_the_gradients_whose_windows_meet_it(where, value):
    """Stride 1 computes extra "garbage" columns whose gradient is 0: 0·inf must never leak.
    An inf in the input's first column, or in the kernel's last column, is met by the garbage
    columns of other rows, but not by the gradient entries the assertions check."""
    x, w = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 3))
    if where == "input":
        x[1, 0, 2, 0] = value
    else:
        w[1, 0, 1, 2] = value
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    out = F.conv2d(xt, wt, padding=1)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    with np.errstate(invalid="ignore"):
        want_x, want_w = conv_gradients_loops(x, w, g, 1, 1, 1, 1)
    if where == "input":  # kernel column 2 never meets input column 0
        assert np.isfinite(want_w[:, :, :, 2]).all() and np.isfinite(wt.grad[:, :, :, 2]).all()
    else:  # input column 0 never meets kernel column 2
        assert np.isfinite(want_x[:, :, :, 0]).all() and np.isfinite(xt.grad[:, :, :, 0]).all()
    finite = np.isfinite(want_x), np.isfinite(want_w)
    np.testing.assert_array_equal(np.isfinite(xt.grad), finite[0])
    np.testing.assert_array_equal(np.isfinite(wt.grad), finite[1])
    assert_machine_equal(xt.grad[finite[0]], want_x[finite[0]], ulps=16)
    assert_machine_equal(wt.grad[finite[1]], want_w[finite[1]], ulps=16)
