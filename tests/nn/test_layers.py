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


# ---- bring your own model: Flatten, Dropout, ModuleList, train/eval, loss modules ------------

def test_flatten_keeps_the_batch_axis_by_default():
    x = tl.Tensor(np.arange(24.0).reshape(2, 3, 2, 2), requires_grad=True)
    assert tl.nn.Flatten()(x).shape == (2, 12)
    assert tl.nn.Flatten(0, -1)(x).shape == (24,) and tl.nn.Flatten(1, 2)(x).shape == (2, 6, 2)
    tl.nn.Flatten()(x).sum().backward()
    assert x.grad.shape == (2, 3, 2, 2)


def test_dropout_is_inverted_seeded_and_the_identity_in_eval():
    layer = tl.nn.Dropout(0.25)
    x = tl.Tensor(np.ones((200, 50)), requires_grad=True)
    tl.manual_seed(3)
    first = layer(x)
    tl.manual_seed(3)
    again = layer(x)
    np.testing.assert_array_equal(first.data, again.data)
    kept = first.data != 0
    assert set(np.unique(first.data)) <= {0.0, 1 / 0.75} and abs(kept.mean() - 0.75) < 0.02
    first.sum().backward()
    np.testing.assert_array_equal(x.grad, kept / 0.75)
    assert layer.eval()(x) is x and not layer.training
    with pytest.raises(ValueError, match="Dropout: p must be a probability"):
        tl.nn.Dropout(1.5)


def test_train_and_eval_reach_every_submodule():
    model = tl.nn.Sequential(tl.nn.Linear(2, 2, rng=0), tl.nn.Sequential(tl.nn.Dropout(0.5)))
    assert model.eval() is model
    assert not any(m.training for _, m in model.named_modules())
    model.train()
    assert all(m.training for _, m in model.named_modules())


def test_module_list_registers_its_modules_and_their_regularizers():
    class Net(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = tl.nn.ModuleList([tl.nn.Linear(2, 3, kernel_regularizer=tl.nn.L2(0.1), rng=0)])
            self.layers.append(tl.nn.Linear(3, 1, kernel_regularizer=tl.nn.L2(0.1), rng=1))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert len(net.layers) == 2 and isinstance(net.layers[-1], tl.nn.Linear)
    assert len(list(net.named_penalties())) == 2
    net.layers.insert(0, tl.nn.ReLU())
    assert isinstance(net.layers[0], tl.nn.ReLU) and len(net.layers) == 3


def test_a_plain_list_of_modules_is_refused_with_a_pointer_to_module_list():
    class Net(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [tl.nn.Linear(2, 2, rng=0)]
    with pytest.raises(TypeError, match="use tl.nn.ModuleList"):
        Net()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_follow_pytorchs_reductions(reduction):
    rng = np.random.default_rng(1)
    z, p = rng.standard_normal((4, 3)), rng.uniform(0.1, 0.9, (4, 3))
    y, labels = (rng.random((4, 3)) > 0.5).astype(float), np.array([0, 2, 1, 2])
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    cases = [
        (tl.nn.MSELoss, z, p, (z - p) ** 2),
        (tl.nn.BCELoss, p, y, -(y * np.log(p) + (1 - y) * np.log(1 - p))),
        (tl.nn.BCEWithLogitsLoss, z, y, np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))),
        (tl.nn.CrossEntropyLoss, z, labels,
         -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(4), labels]),
    ]
    for make, prediction, target, elementwise in cases:
        out = make(reduction=reduction)(tl.Tensor(prediction), target)
        np.testing.assert_allclose(out.data, reduce(elementwise), rtol=1e-12)
        assert tl.gradcheck(lambda t: make(reduction=reduction)(t, target),
                            [tl.Tensor(prediction, requires_grad=True)])
    with pytest.raises(ValueError, match="reduction must be one of"):
        tl.nn.MSELoss(reduction="avg")


def test_quadratic_cost_is_k_over_2_times_mse_loss():
    rng = np.random.default_rng(2)
    a, y = rng.random((5, 3)), rng.random((5, 3))
    quadratic = tl.nn.quadratic_cost(tl.Tensor(a), y).item()
    mse = tl.nn.functional.mse_loss(tl.Tensor(a), y).item()
    assert quadratic == pytest.approx(3 / 2 * mse, rel=1e-14)


def test_functional_names_are_pytorchs():
    F = tl.nn.functional
    x = tl.Tensor(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(F.relu(x).data, [[0.0, 0.0, 2.0]])
    np.testing.assert_allclose(F.softmax(x, dim=1).data.sum(), 1.0)
    np.testing.assert_allclose(np.exp(F.log_softmax(x, dim=1).data), F.softmax(x, 1).data)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.cross_entropy is tl.nn.softmax_cross_entropy


def test_kernel_and_bias_regularizers_are_keras_style_attributes():
    layer = tl.nn.Linear(3, 2, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=0)
    assert layer.kernel_regularizer.lam == 0.1 and layer.bias_regularizer is None
    layer.kernel_regularizer, layer.bias_regularizer = None, tl.nn.L2(0.5)
    (name, penalty), = layer.named_penalties()
    assert name == "bias" and penalty.item() == pytest.approx(0.5 * float(np.vdot(layer.bias.data, layer.bias.data)))
    with pytest.raises(ValueError, match="Linear: bias_regularizer given but the layer has no bias"):
        tl.nn.Linear(3, 2, bias=False).bias_regularizer = tl.nn.L2(0.1)
