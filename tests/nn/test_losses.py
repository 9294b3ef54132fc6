"""Each loss against its formula in plain numpy, its gradient, stability and label checks."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import assert_machine_equal
from tinygrad_l2 import Tensor
from tinygrad_l2.nn import (binary_cross_entropy, binary_cross_entropy_with_logits,
                            quadratic_cost, softmax_cross_entropy)

rng = np.random.default_rng(0)


def test_quadratic_cost_is_nielsens_half_squared_norm_averaged_over_batch():
    a, y = rng.random((5, 3)), rng.random((5, 3))
    expected = np.mean([0.5 * np.sum((a[i] - y[i]) ** 2) for i in range(5)])
    assert quadratic_cost(Tensor(a), y).item() == pytest.approx(expected, rel=1e-14)
    assert tl.gradcheck(lambda a: quadratic_cost(a, y), [Tensor(a, requires_grad=True)])


def test_quadratic_cost_with_column_major_batches():
    a, y = rng.random((3, 5)), rng.random((3, 5))
    assert quadratic_cost(Tensor(a), y, batch_axis=1).item() == pytest.approx(
        0.5 * np.sum((a - y) ** 2) / 5, rel=1e-14)


def test_binary_cross_entropy_is_the_course_cost():
    a, y = rng.uniform(0.05, 0.95, (1, 8)), (rng.random((1, 8)) > 0.5).astype(float)
    expected = -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)) / 8
    assert binary_cross_entropy(Tensor(a), y).item() == pytest.approx(expected, rel=1e-14)
    assert tl.gradcheck(lambda a: binary_cross_entropy(a, y), [Tensor(a, requires_grad=True)])


def test_binary_cross_entropy_is_finite_at_zero_and_one():
    a = Tensor(np.array([[0.0, 1.0, 1e-300, 1 - 1e-16]]), requires_grad=True)
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    loss = binary_cross_entropy(a, y)
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx((100 + 100 + 100 + 36.7368005696771) / 4, rel=1e-12)  # logs clamped at -100
    loss.backward()
    assert np.all(np.isfinite(a.grad))


def test_bce_with_logits_matches_formula_and_is_stable():
    z, y = rng.standard_normal((4, 1)) * 3, (rng.random((4, 1)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert binary_cross_entropy_with_logits(Tensor(z), y).item() == pytest.approx(expected, rel=1e-12)
    assert tl.gradcheck(lambda z: binary_cross_entropy_with_logits(z, y), [Tensor(z, requires_grad=True)])
    extreme = Tensor(np.array([[1000.0], [-1000.0]]), requires_grad=True)
    loss = binary_cross_entropy_with_logits(extreme, np.array([[0.0], [1.0]]))
    assert loss.item() == pytest.approx(1000.0)
    loss.backward()
    np.testing.assert_allclose(extreme.grad, [[0.5], [-0.5]])


def test_softmax_cross_entropy_matches_formula():
    z, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(6), labels]))
    assert softmax_cross_entropy(Tensor(z), labels).item() == pytest.approx(expected, rel=1e-13)
    assert tl.gradcheck(lambda z: softmax_cross_entropy(z, labels), [Tensor(z, requires_grad=True)])


def test_softmax_cross_entropy_is_stable_at_extreme_logits():
    z = Tensor(np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]]), requires_grad=True)
    loss = softmax_cross_entropy(z, np.array([0, 0]))
    assert loss.item() == pytest.approx(1e4 / 2)
    loss.backward()
    np.testing.assert_allclose(z.grad, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-12)


@pytest.mark.parametrize("labels,kind,match", [
    (np.array([0, 1]), ValueError, "labels have shape \\(2,\\), expected \\(3,\\)"),
    (np.array([0.0, 1.0, 2.0]), TypeError, "integer class indices"),
    (np.array([0, 1, 4]), ValueError, "labels must be in \\[0, 3\\]"),
    (np.array([-1, 1, 2]), ValueError, "labels must be in"),
])
def test_softmax_cross_entropy_rejects_bad_labels(labels, kind, match):
    with pytest.raises(kind, match=match):
        softmax_cross_entropy(Tensor(np.zeros((3, 4))), labels)


def test_losses_reject_targets_of_the_wrong_shape_or_range():
    a = Tensor(np.full((1, 4), 0.5))
    with pytest.raises(ValueError, match="targets have shape \\(4,\\), predictions \\(1, 4\\)"):
        binary_cross_entropy(a, np.zeros(4))
    with pytest.raises(ValueError, match="targets must lie in \\[0, 1\\]"):
        binary_cross_entropy(a, np.full((1, 4), 2.0))
    with pytest.raises(ValueError, match="predictions must lie in \\[0, 1\\]"):
        binary_cross_entropy(Tensor(np.full((1, 4), 1.5)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="quadratic_cost: targets have shape"):
        quadratic_cost(a, np.zeros((4, 1)))


# ---- kinks and exact 0/1: every loss against its analytic gradient -----------------------------

def sigma(z):
    with np.errstate(over="ignore"):  # e^800 is inf: σ is 0 there, exactly
        return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("z", [0.0, -0.0, 1e-300, -1e-300, 40.0, -40.0, 800.0, -800.0])
@pytest.mark.parametrize("y", [0.0, 0.3, 1.0])
def test_bce_with_logits_gradient_is_sigma_minus_y_everywhere_including_zero(z, y):
    logits = Tensor(np.array([z, z]), requires_grad=True)
    binary_cross_entropy_with_logits(logits, np.array([y, y])).backward()
    assert_machine_equal(logits.grad, (sigma(np.array([z, z])) - y) / 2, ulps=2)


def test_a_zero_initialised_logistic_regression_takes_pytorchs_first_step():
    """All logits 0 on the first step: the gradient is (½ − y)/N, not −y/N (relu'(0) = 0 and
    abs'(0) = 0 taken separately would lose the ½)."""
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -2.0]])
    y = np.array([[1.0], [0.0], [1.0]])
    w = Tensor(np.zeros((2, 1)), requires_grad=True)
    binary_cross_entropy_with_logits(Tensor(x) @ w, y).backward()
    assert_machine_equal(w.grad, x.T @ (0.5 - y) / 3, ulps=2)


def test_bce_with_logits_target_gradient_is_minus_z_over_n():
    z = np.array([0.5, -1.0, 2.0])
    y = Tensor(np.array([0.0, 0.5, 1.0]), requires_grad=True)
    binary_cross_entropy_with_logits(Tensor(z), y).backward()
    np.testing.assert_array_equal(y.grad, -z / 3)
    assert tl.gradcheck(lambda y: binary_cross_entropy_with_logits(Tensor(z), y),
                        [Tensor(np.array([0.1, 0.5, 0.9]), requires_grad=True)])


@pytest.mark.parametrize("a, y", [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.5, 0.5)])
def test_binary_cross_entropy_gradient_at_exact_probabilities_is_pytorchs(a, y):
    """PyTorch's BCELoss: dJ/da = (a − y) / max(a(1 − a), 1e-12) / N."""
    probs = Tensor(np.array([a]), requires_grad=True)
    binary_cross_entropy(probs, np.array([y])).backward()
    assert probs.grad[0] == (a - y) / max(a * (1 - a), 1e-12)


def test_quadratic_cost_gradient_is_a_minus_y_over_m_at_a_equals_y():
    a = Tensor(np.array([[0.5, 1.0], [0.0, 0.25]]), requires_grad=True)
    quadratic_cost(a, a.data.copy()).backward()
    np.testing.assert_array_equal(a.grad, np.zeros((2, 2)))


@pytest.mark.parametrize("a, y", [([np.nan, 0.5], [1.0, 0.0]), ([0.4, 0.5], [np.nan, 0.0])],
                         ids=["NaN probability", "NaN target"])
def test_binary_cross_entropy_refuses_nan_as_pytorch(a, y):
    with pytest.raises(ValueError, match="binary_cross_entropy: .* must lie in \\[0, 1\\], not NaN"):
        binary_cross_entropy(Tensor(np.array(a)), Tensor(np.array(y)))


TWO_INPUT_LOSSES = {
    "mse_loss": tl.nn.functional.mse_loss,
    "quadratic_cost": tl.nn.quadratic_cost,
    "binary_cross_entropy": binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
}


@pytest.mark.parametrize("loss", TWO_INPUT_LOSSES.values(), ids=TWO_INPUT_LOSSES.keys())
def test_every_two_input_loss_differentiates_a_target_that_requires_grad(loss):
    prediction = Tensor(np.array([[0.2, 0.7], [0.4, 0.9]]), requires_grad=True)
    target = Tensor(np.array([[0.1, 0.5], [0.8, 0.3]]), requires_grad=True)
    loss(prediction, target).backward()
    assert target.grad is not None and prediction.grad is not None
    assert tl.gradcheck(loss, [prediction, target])


def test_a_float32_target_that_requires_grad_gets_a_float32_gradient_through_a_float64_loss():
    prediction = Tensor(np.array([0.25, 0.5]), requires_grad=True)
    target = Tensor(np.array([1.0, 0.0], dtype=np.float32), requires_grad=True)
    tl.nn.functional.mse_loss(prediction, target).backward()
    assert target.grad.dtype == np.float32
    np.testing.assert_array_equal(target.grad, [0.75, -0.5])  # −2(p − t)/N, exact in binary


@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_target_gradients_are_torchs(name):
    torch = pytest.importorskip("torch")
    p, t = np.array([0.2, 0.7, 0.4]), np.array([0.1, 0.5, 0.8])
    ours_t = Tensor(t, requires_grad=True)
    getattr(tl.nn.functional, name)(Tensor(p), ours_t).backward()
    theirs_t = torch.tensor(t, requires_grad=True)
    getattr(torch.nn.functional, name)(torch.tensor(p), theirs_t).backward()
    np.testing.assert_allclose(ours_t.grad, theirs_t.grad.numpy(), rtol=1e-14, atol=0)
