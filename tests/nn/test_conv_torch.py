"""Conv2d (dilation, groups, depthwise, bias=False), pooling (padding, dilation, ceil_mode,
count_include_pad, divisor_override) and adaptive average pooling against torch 2.13, in
float64, element by element (1e-10): values and the gradients of every input."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = 1e-10


def check(ours, theirs, *arrays, seed=0):
    """ours(*Tensors) and theirs(*torch tensors) on the same arrays and the same upstream
    gradient: equal values and equal gradients for every array."""
    mine = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), theirs(*ref)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=0, atol=TOL)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    for m, r in zip(mine, ref):
        np.testing.assert_allclose(m.grad, r.grad.numpy(), rtol=0, atol=TOL)


CONVS = [  # (input shape, weight shape, bias, conv2d keyword arguments)
    ((2, 3, 9, 8), (4, 3, 3, 3), True, dict(dilation=2)),
    ((1, 2, 10, 9), (3, 2, 3, 2), False, dict(stride=2, padding=(2, 1), dilation=(2, 3))),
    ((2, 4, 7, 7), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    ((2, 4, 6, 7), (4, 1, 3, 3), True, dict(groups=4, padding="same")),  # depthwise
    ((1, 3, 6, 6), (6, 1, 2, 2), False, dict(groups=3, stride=2)),      # depthwise, multiplier 2
    ((1, 2, 8, 8), (2, 2, 4, 3), True, dict(padding="same", dilation=2)),  # odd total padding
    ((2, 6, 9, 9), (3, 2, 3, 3), True, dict(groups=3, dilation=2, stride=2, padding=2)),
]


@pytest.mark.parametrize("xs, ws, bias, kwargs", CONVS, ids=[str(c[3]) for c in CONVS])
def test_conv2d_matches_torch(xs, ws, bias, kwargs):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws)] + ([rng.standard_normal(ws[0])] if bias else [])
    check(lambda *t: F.conv2d(*t, **kwargs), lambda *t: TF.conv2d(*t, **kwargs), *arrays)


def test_conv2d_layer_with_groups_dilation_and_no_bias_matches_torch_nn_conv2d():
    ours = tl.nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4, bias=False, dtype=np.float64, rng=0)
    theirs = torch.nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4, bias=False, dtype=torch.float64)
    assert ours.weight.shape == tuple(theirs.weight.shape) == (8, 1, 3, 3) and ours.bias is None
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    check(lambda x: ours(x), lambda x: theirs(x), np.random.default_rng(2).standard_normal((2, 4, 6, 5)))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=0, atol=TOL)


POOLS = [  # (our function, torch's, input shape, keyword arguments)
    (F.max_pool2d, TF.max_pool2d, (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    (F.max_pool2d, TF.max_pool2d, (1, 2, 7, 8), dict(kernel_size=2, ceil_mode=True)),
    (F.max_pool2d, TF.max_pool2d, (1, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (F.max_pool2d, TF.max_pool2d, (1, 1, 9, 9), dict(kernel_size=2, stride=2, dilation=2, ceil_mode=True)),
    (F.max_pool2d, TF.max_pool2d, (1, 2, 6, 5), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1))),
    (F.max_pool2d, TF.max_pool2d, (1, 1, 5, 6), dict(kernel_size=2, padding=1, ceil_mode=True)),  # last window dropped
    (F.avg_pool2d, TF.avg_pool2d, (1, 1, 5, 6), dict(kernel_size=2, padding=1, ceil_mode=True)),
    (F.avg_pool2d, TF.avg_pool2d, (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    (F.avg_pool2d, TF.avg_pool2d, (2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    (F.avg_pool2d, TF.avg_pool2d, (1, 2, 7, 8), dict(kernel_size=2, ceil_mode=True)),
    (F.avg_pool2d, TF.avg_pool2d, (1, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (F.avg_pool2d, TF.avg_pool2d, (1, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                                     count_include_pad=False)),
    (F.avg_pool2d, TF.avg_pool2d, (1, 2, 6, 6), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True,
                                                     divisor_override=5)),
]


@pytest.mark.parametrize("ours, theirs, shape, kwargs", POOLS, ids=[f"{p[0].__name__}-{p[3]}" for p in POOLS])
def test_pooling_matches_torch(ours, theirs, shape, kwargs):
    x = np.random.default_rng(3).permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1  # no ties
    check(lambda t: ours(t, **kwargs), lambda t: theirs(t, **kwargs), x)


@pytest.mark.parametrize("shape, size", [((2, 3, 7, 5), 1), ((2, 3, 7, 5), (3, 2)), ((1, 2, 8, 6), (4, 3)),
                                         ((1, 2, 5, 9), (None, 4)), ((1, 1, 4, 4), 6)])
def test_adaptive_avg_pool2d_matches_torch(shape, size):
    x = np.random.default_rng(4).standard_normal(shape)
    check(lambda t: F.adaptive_avg_pool2d(t, size), lambda t: TF.adaptive_avg_pool2d(t, size), x)
    layer = tl.nn.AdaptiveAvgPool2d(size)
    np.testing.assert_allclose(layer(Tensor(x)).data, torch.nn.AdaptiveAvgPool2d(size)(torch.tensor(x)).numpy(),
                               rtol=0, atol=TOL)


def test_pooling_layers_take_torchs_arguments():
    x = np.random.default_rng(5).standard_normal((1, 2, 7, 7))
    pairs = [(tl.nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
             (tl.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
              torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).numpy(), rtol=0, atol=TOL)
