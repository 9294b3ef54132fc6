"""PSO: minimizes a loss closure with no gradient; an L2 node in the loss regularizes it."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor


def test_pso_minimizes_a_quadratic_without_gradients():
    w = Tensor(np.array([3.0, -2.0]), requires_grad=True)
    target = np.array([0.5, 1.0])
    opt = tl.optim.PSO([w], n_particles=20, rng=0)
    first = opt.step(lambda: ((w - target) ** 2).sum())
    for _ in range(60):
        best = opt.step(lambda: ((w - target) ** 2).sum())
    assert best < 1e-4 < first
    np.testing.assert_allclose(w.data, target, atol=1e-2)
    assert w.grad is None  # no gradient was ever computed


def test_pso_sees_the_l2_term_of_the_loss():
    """min (w − 1)² + lam·w² is at w = 1/(1 + lam): the penalty moves the optimum."""
    lam = 1.0
    w = Tensor(np.array([0.0]), requires_grad=True)
    opt = tl.optim.PSO([w], n_particles=16, rng=1)
    for _ in range(80):
        opt.step(lambda: ((w - 1.0) ** 2).sum() + tl.nn.L2(lam)(w))
    assert w.data[0] == pytest.approx(1 / (1 + lam), abs=1e-3)


def test_pso_is_seedable():
    def run():
        w = Tensor(np.array([2.0, 2.0]), requires_grad=True)
        opt = tl.optim.PSO([w], n_particles=8, rng=42)
        for _ in range(5):
            opt.step(lambda: (w ** 2).sum())
        return w.data.copy()
    np.testing.assert_array_equal(run(), run())


def test_pso_best_loss_never_increases():
    w = Tensor(np.array([2.0, -1.0, 0.5]), requires_grad=True)
    opt = tl.optim.PSO([w], n_particles=10, rng=3)
    losses = [opt.step(lambda: (w.abs() ** 1.5).sum()) for _ in range(20)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))


def test_a_failing_closure_leaves_the_parameters_exactly_as_they_were():
    import pytest
    w = tl.Tensor(np.array([1.0, -2.0], np.float32), requires_grad=True)
    opt = tl.optim.PSO([w], n_particles=4, rng=0)
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("data loader failed")
        return (w * w).sum()
    with pytest.raises(RuntimeError, match="data loader failed"):
        opt.step(closure)
    assert w.dtype == np.float32 and np.array_equal(w.data, [1.0, -2.0])
    opt.step(lambda: (w * w).sum())  # and the swarm still works afterwards
    with pytest.raises(TypeError, match="n_particles must be an integer"):
        tl.optim.PSO([w], n_particles=2.5)
