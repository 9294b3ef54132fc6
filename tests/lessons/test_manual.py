"""The hand-derived reference itself: its gradients against finite differences of its cost."""
import numpy as np
import pytest

from tinygrad_l2.lessons import manual


def numerical_grad(f, array, eps=1e-6):
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = f()
        array[index] = original - eps
        minus = f()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
@pytest.mark.parametrize("lambd", [0.0, 0.7])
def test_dlai_backward_matches_finite_differences_of_dlai_cost(cost, lambd):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 7)), (rng.random((1, 7)) > 0.5).astype(float)
    params = manual.dlai_initialize((2, 4, 3, 1), seed=1)
    for l in (1, 2, 3):
        params[f"b{l}"] = rng.standard_normal(params[f"b{l}"].shape) * 0.1
    AL, caches = manual.dlai_forward(X, params)
    grads = manual.dlai_backward(AL, Y, caches, lambd=lambd, cost=cost)
    J = lambda: manual.dlai_cost(manual.dlai_forward(X, params)[0], Y, params, lambd, cost)
    for key in ("W1", "b1", "W2", "b2", "W3", "b3"):
        np.testing.assert_allclose(grads["d" + key], numerical_grad(J, params[key]), rtol=1e-5, atol=1e-8)


def test_dlai_l2_changes_only_dw_by_lambda_over_m_w():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((2, 9)), (rng.random((1, 9)) > 0.5).astype(float)
    params = manual.dlai_initialize((2, 5, 1), seed=2)
    AL, caches = manual.dlai_forward(X, params)
    plain, reg = manual.dlai_backward(AL, Y, caches), manual.dlai_backward(AL, Y, caches, lambd=0.9)
    for key in plain:
        if key.startswith("dW"):
            np.testing.assert_allclose(reg[key] - plain[key], 0.9 / 9 * params[key[1:]], rtol=1e-12)
        else:
            np.testing.assert_array_equal(reg[key], plain[key])


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
def test_nielsen_backprop_matches_finite_differences_per_example(cost):
    weights, biases = manual.nielsen_initialize((3, 4, 2), seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 1)), np.array([[1.0], [0.0]])

    def C():
        a = x
        for w, b in zip(weights, biases):
            a = manual.sigmoid(w @ a + b)
        if cost == "quadratic":
            return 0.5 * np.sum((a - y) ** 2)
        return -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a))

    nabla_w, nabla_b = manual.nielsen_backprop(weights, biases, x, y, cost)
    for analytic, param in zip(nabla_w + nabla_b, weights + biases):
        np.testing.assert_allclose(analytic, numerical_grad(C, param), rtol=1e-5, atol=1e-9)


def test_nielsen_update_decays_weights_not_biases():
    weights, biases = manual.nielsen_initialize((2, 3, 1), seed=0)
    x, y = np.zeros((2, 1)), np.zeros((1, 1))
    # with a zero input the first layer's ∇w is 0: the update is pure decay
    new_w, new_b = manual.nielsen_update_mini_batch(weights, biases, [(x, y)], eta=0.5, lmbda=2.0, n=10)
    np.testing.assert_array_equal(new_w[0], (1 - 0.5 * 2.0 / 10) * weights[0])
    nw, nb = manual.nielsen_update_mini_batch(weights, biases, [(x, y)], eta=0.5, lmbda=0.0, n=10)
    np.testing.assert_array_equal(new_b[0], nb[0])


def test_unknown_cost_is_an_error():
    with pytest.raises(ValueError, match="cost must be"):
        manual.nielsen_delta("hinge", 0, 0, 0)
