"""SGD: PyTorch's rule, and L2 in the loss ≡ weight decay (the textbook factor 1 − ηλ/n)."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import assert_machine_equal
from tinygrad_l2 import Tensor

rng = np.random.default_rng(0)
X, Y = rng.standard_normal((16, 3)), rng.integers(0, 2, 16)


def data_loss(model):
    return tl.nn.softmax_cross_entropy(model(Tensor(X)), Y)


def test_sgd_step_is_theta_minus_lr_grad():
    p = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    p.grad = np.array([0.5, -1.0])
    tl.optim.SGD([p], lr=0.1).step()
    np.testing.assert_array_equal(p.data, [1.0 - 0.1 * 0.5, 2.0 + 0.1 * 1.0])


def test_sgd_momentum_follows_pytorch_pseudocode():
    p = Tensor(np.array([1.0]), requires_grad=True)
    opt = tl.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1)
    grads, theta, buf = [0.5, -0.25, 1.0], 1.0, None
    for g in grads:
        p.grad = np.array([g])
        opt.step()
        buf = g if buf is None else 0.9 * buf + (1 - 0.1) * g
        theta = theta - 0.1 * buf
        assert p.data[0] == theta


def test_sgd_nesterov():
    p = Tensor(np.array([1.0]), requires_grad=True)
    opt = tl.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    p.grad = np.array([0.5])
    opt.step()
    opt.step()
    buf = 0.9 * 0.5 + 0.5
    assert p.data[0] == pytest.approx(1.0 - 0.1 * (0.5 + 0.9 * 0.5) - 0.1 * (0.5 + 0.9 * buf), rel=1e-15)


def test_parameter_without_grad_is_skipped():
    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    a.grad = np.array([1.0], dtype=np.float32)
    tl.optim.SGD([a, b], lr=1.0, weight_decay=0.5).step()
    assert b.data[0] == 2.0 and a.data[0] == pytest.approx(1.0 - (1.0 + 0.5))


def test_a_bad_grad_shape_updates_nothing():
    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    a.grad, b.grad = np.array([1.0], np.float32), np.array([1.0], np.float32)
    b.data = np.ones(3, np.float32)  # the data changed shape after its gradient was computed
    with pytest.raises(ValueError, match="grad of shape \\(1,\\) for a parameter of shape \\(3,\\)"):
        tl.optim.SGD([a, b], lr=1.0).step()
    assert a.data[0] == 1.0


def test_l2_in_loss_plus_sgd_is_the_textbook_update_with_factor_one_minus_eta_lambda_over_n():
    """Nielsen: C = C₀ + (λ/2n)Σw²  ⇒  w ← (1 − ηλ/n)·w − η·∇C₀, b ← b − η·∇C₀."""
    eta, lmbda, n = 0.5, 3.0, 16
    model = tl.nn.MLP([3, 6, 2], kernel_regularizer=tl.nn.L2.from_nielsen(lmbda, n), dtype=np.float64, rng=3)
    reference = tl.nn.MLP([3, 6, 2], dtype=np.float64, rng=3)
    for _ in range(5):
        reference.load_state_dict(model.state_dict())  # both steps start from the same weights
        reference.zero_grad()
        data_loss(reference).backward()  # ∇C₀ at the reference's current weights
        factor = tl.conventions.weight_decay_factor(eta, tl.conventions.nielsen_to_weight_decay(lmbda, n))
        expected = {}
        weights, _ = tl.nn.weights_and_biases(reference)
        for name, p in reference.named_parameters():
            decayed = factor * p.data if any(p is w for w in weights) else p.data
            expected[name] = decayed - eta * p.grad

        model.zero_grad()
        (data_loss(model) + model.regularization_loss()).backward()
        tl.optim.SGD(model.parameters(), lr=eta).step()
        for name, p in model.named_parameters():
            assert_machine_equal(p.data, expected[name])
            if name.rpartition(".")[2] == "bias":
                # the penalty never reaches b: the update is the plain one
                np.testing.assert_array_equal(p.data, expected[name])


def test_l2_in_loss_gives_the_same_weights_as_sgd_weight_decay_on_weights_only():
    lam = 0.02
    with_loss = tl.nn.MLP([3, 6, 2], kernel_regularizer=tl.nn.L2(lam), dtype=np.float64, rng=4)
    with_decay = tl.nn.MLP([3, 6, 2], dtype=np.float64, rng=4)
    opt_loss = tl.optim.SGD(with_loss.parameters(), lr=0.3, momentum=0.9)
    weights, biases = tl.nn.weights_and_biases(with_decay)
    opt_decay = tl.optim.SGD([{"params": weights, "weight_decay": tl.conventions.keras_to_weight_decay(lam)},
                              {"params": biases}], lr=0.3, momentum=0.9)
    for _ in range(10):
        opt_loss.zero_grad()
        (data_loss(with_loss) + with_loss.regularization_loss()).backward()
        opt_loss.step()
        opt_decay.zero_grad()
        data_loss(with_decay).backward()
        opt_decay.step()
    for (name, p), (_, q) in zip(with_loss.named_parameters(), with_decay.named_parameters()):
        assert_machine_equal(p.data, q.data, ulps=64)  # 10 steps of reordered sums
