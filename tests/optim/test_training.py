"""A 2-layer MLP with a kernel_regularizer trains with each optimizer."""
import numpy as np
import pytest

import tinygrad_l2 as tl

from tinygrad_l2 import Tensor

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 2))
Y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)  # XOR-like: needs the hidden layer


def loss_of(model):
    return tl.nn.softmax_cross_entropy(model(Tensor(X)), Y) + model.regularization_loss()


@pytest.mark.parametrize("make_opt,steps", [
    (lambda ps: tl.optim.SGD(ps, lr=0.5, momentum=0.9), 150),
    (lambda ps: tl.optim.Adam(ps, lr=0.05), 150),
    (lambda ps: tl.optim.AdamW(ps, lr=0.05, weight_decay=1e-2), 150),
])
def test_mlp_with_l2_trains_with_gradient_optimizers(make_opt, steps):
    model = tl.nn.MLP([2, 16, 2], kernel_regularizer=tl.nn.L2(1e-4), dtype=np.float64, rng=0)
    opt = make_opt(model.parameters())
    start = loss_of(model).item()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_of(model)
        loss.backward()
        opt.step()
    accuracy = (model(Tensor(X)).data.argmax(axis=1) == Y).mean()
    assert loss.item() < 0.5 * start and accuracy >= 0.9


def test_mlp_with_l2_trains_with_pso():
    model = tl.nn.MLP([2, 4, 2], kernel_regularizer=tl.nn.L2(1e-4), dtype=np.float64, rng=0)
    opt = tl.optim.PSO(model.parameters(), n_particles=30, init_std=1.0, rng=0)
    start = loss_of(model).item()
    for _ in range(60):
        best = opt.step(lambda: loss_of(model))
    assert best < 0.6 * start
    assert best == pytest.approx(loss_of(model).item(), rel=1e-6)
