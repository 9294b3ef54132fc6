"""Steps that once replayed silently wrong (found by an adversarial review): each compiled
step must equal the same step run eagerly, call after call, from the same weights."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.ops import row_indices

LAM = 0.01  # read by a generator expression inside a step: guarded


def linear(n_in, n_out, seed):
    return tl.nn.Linear(n_in, n_out, dtype=np.float64, rng=seed)


def mse_target(layers, opt):  # a float target becomes a constant made on the argument's array
    def step(X, Y, M, L):
        loss = tl.nn.mse_loss(layers[1](layers[0](X).tanh()), Y)
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def bias_and_scale(layers, opt):  # two 1-D parameters: two names
    def step(X, Y, M, L):
        loss = ((layers[0](X) * layers[2]) ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def gated(layers, opt):  # two activations of one layer's output
    def step(X, Y, M, L):
        h = layers[0](X)
        loss = tl.nn.mse_loss(layers[1](h.tanh() * h.sigmoid()), Y)
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def row_normalized(layers, opt):  # dividing by an (m, 1) statistic: a broadcast gradient sum
    def step(X, Y, M, L):
        h = layers[0](X)
        r = ((h * h).mean(axis=1, keepdims=True) + 1.0).sqrt()
        loss = tl.nn.mse_loss(layers[1](h / r), Y)
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def clamped(layers, opt):  # an op without a template saves arrays the source does not show
    def step(X, Y, M, L):
        h = layers[0](X).clamp(-0.2, 0.2) * 2.0
        loss = tl.nn.mse_loss(layers[1](h), Y)
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def returns_a_view(layers, opt):  # z.T is a view of a matmul buffer
    def step(X, Y, M, L):
        z = layers[0](X)
        loss = (z ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss, z.T
    return step


def loss_after_step(layers, opt):  # an op after opt.step() reads the updated weights
    def step(X, Y, M, L):
        loss = (layers[0](X) ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss, (layers[0](X) ** 2).mean()
    return step


def where_mask(layers, opt):  # a where() condition passed as an argument
    def step(X, Y, M, L):
        h = layers[0](X)
        loss = (tl.where(M, h, h * 0.0) ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def tensor_labels(layers, opt):  # integer labels passed as a Tensor
    def step(X, Y, M, L):
        loss = tl.nn.softmax_cross_entropy(layers[0](X), L)
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


class ClipGrad(tl.Function):
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return np.clip(g, -0.05, 0.05)


def clipped_gradient(layers, opt):  # a backward not linear in g: no lr in the seed
    def step(X, Y, M, L):
        loss = tl.nn.softmax_cross_entropy(ClipGrad.apply(layers[0](X)), L)
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


class FirstOnly(tl.Function):
    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, None  # no gradient for y, which requires grad


def none_gradient(layers, opt):  # a custom backward's None: no gradient, not a crash
    def step(X, Y, M, L):
        loss = (FirstOnly.apply(layers[0](X), layers[2]) ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def global_in_generator(layers, opt):  # a global read inside a generator expression
    def step(X, Y, M, L):
        loss = tl.nn.mse_loss(layers[1](layers[0](X).tanh()), Y) + sum(
            LAM * (layer.weight ** 2).sum() for layer in layers[:2])
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return step


def scheduled(layers, opt):  # a scheduler stepped inside the compiled function
    scheduler = tl.optim.lr_scheduler.StepLR(opt, 1, 0.5)

    def step(X, Y, M, L):
        loss = tl.nn.mse_loss(layers[1](layers[0](X)), Y)
        loss.backward(); opt.step(); opt.zero_grad(); scheduler.step()
        return loss
    return step


SCENARIOS = [mse_target, bias_and_scale, gated, row_normalized, clamped, returns_a_view,
             loss_after_step, where_mask, tensor_labels, clipped_gradient, none_gradient,
             global_in_generator, scheduled]


def run(make, compiled, calls=4):
    global LAM
    layers = [linear(3, 3, 0), linear(3, 1, 1), tl.Tensor(np.full(3, 2.0), requires_grad=True)]
    opt = tl.optim.SGD([p for layer in layers[:2] for p in layer.parameters()] + [layers[2]], lr=0.2)
    step = make(layers, opt)
    step = tl.compile(step) if compiled else step
    rng = np.random.default_rng(5)
    kept = []
    try:
        for call in range(calls):
            LAM = [0.01, 0.01, 1.0, 5.0][call]
            X, Y = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
            mask = rng.random((4, 3)) > [0.5, 0.0, 1.0, 0.5][call]
            labels = tl.Tensor(rng.integers(0, 3, 4), dtype=np.int64)
            out = step(X, Y, mask, labels)
            kept.append(out if isinstance(out, tuple) else (out,))
    finally:
        LAM = 0.01
    outputs = [[t.data.copy() for t in o] for o in kept]  # read after every call: no overwrites
    return outputs, [p.data.copy() for layer in layers[:2] for p in layer.parameters()] + [layers[2].data.copy()]


@pytest.mark.parametrize("make", SCENARIOS, ids=lambda f: f.__name__)
def test_compiled_equals_eager(make):
    want_outputs, want_params = run(make, False)
    got_outputs, got_params = run(make, True)
    for want, got in zip(want_outputs, got_outputs):
        for a, b in zip(want, got):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    for a, b in zip(want_params, got_params):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_the_same_tensor_for_two_arguments_retraces_when_they_part():
    w = tl.Tensor(np.eye(2), requires_grad=True)

    def step(a, b):
        loss = ((a @ w) * b).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    A, B = tl.Tensor(np.ones((2, 2))), tl.Tensor(np.full((2, 2), 3.0))
    compiled(A, A)
    w.grad = None
    assert compiled(A, B).item() == pytest.approx(step(A, B).item()) and compiled.traces == 2


def test_user_names_that_collide_with_generated_ones_stay_exact():
    for names in (("w", "w"), ("X", "B"), ("lr", "B"), ("P1", "B"), ("BUF0", "B"), ("dloss", "A1")):
        results = []
        for compiled in (False, True):
            A = tl.Tensor(np.eye(3) * 0.5 + 0.1, requires_grad=True, name=names[0])
            B = tl.Tensor(np.eye(3) * -0.3 + 0.2, requires_grad=True, name=names[1])
            opt = tl.optim.SGD([A, B], lr=0.1)

            def step(X):
                loss = (((X @ A).tanh() @ B) ** 2).mean()
                loss.backward(); opt.step(); opt.zero_grad()
                return loss
            step = tl.compile(step) if compiled else step
            X = tl.Tensor(np.arange(6.0).reshape(2, 3) / 6)
            results.append([step(X).item() for _ in range(3)])
        assert results[1] == pytest.approx(results[0], rel=1e-12), names


def test_row_indices_are_the_shared_arange():
    assert row_indices(4) is row_indices(4)
