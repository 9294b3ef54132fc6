"""Linear, Sequential and activation layers."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor


def test_linear_computes_x_weight_T_plus_bias_with_pytorch_shapes():
    layer = tl.nn.Linear(3, 2, dtype=np.float64, rng=0)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(layer(x).data, x @ layer.weight.data.T + layer.bias.data)


def test_linear_default_init_is_uniform_in_plus_minus_one_over_sqrt_fan_in():
    layer = tl.nn.Linear(400, 300, rng=0)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.99 * bound
    assert layer.weight.dtype == np.float32


def test_linear_init_is_seedable():
    tl.manual_seed(7)
    a = tl.nn.Linear(3, 2)
    tl.manual_seed(7)
    b = tl.nn.Linear(3, 2)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(tl.nn.Linear(3, 2, rng=5).weight.data,
                                  tl.nn.Linear(3, 2, rng=5).weight.data)


def test_linear_gradcheck():
    layer = tl.nn.Linear(3, 2, dtype=np.float64, rng=0)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    assert tl.gradcheck(lambda x, w, b: x @ w.T + b, [x, layer.weight, layer.bias])


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="input of shape \\(4, 5\\) does not end in in_features=3"):
        tl.nn.Linear(3, 2)(np.ones((4, 5)))


def test_linear_without_bias():
    layer = tl.nn.Linear(3, 2, bias=False, rng=0)
    assert layer.bias is None and len(layer.parameters()) == 1


@pytest.mark.parametrize("module,fn", [(tl.nn.ReLU, lambda x: np.maximum(x, 0)),
                                       (tl.nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
                                       (tl.nn.Tanh, np.tanh)])
def test_activation_modules(module, fn):
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(module()(Tensor(x)).data, fn(x), rtol=1e-15)


def test_sequential_indexing_and_forward():
    seq = tl.nn.Sequential(tl.nn.Linear(2, 3, rng=0), tl.nn.ReLU(), tl.nn.Linear(3, 1, rng=1))
    assert len(seq) == 3 and isinstance(seq[1], tl.nn.ReLU)
    assert seq(np.ones((5, 2), dtype=np.float32)).shape == (5, 1)
    with pytest.raises(TypeError, match="item 0 is a int"):
        tl.nn.Sequential(3)
