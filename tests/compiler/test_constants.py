"""Numbers and arrays a compiled step holds across calls: computed once where nothing can
change them, never shared with anything that could write into them."""
import numpy as np

import tinygrad_l2 as tl


class ConstantGradient(tl.Function):
    """z = x;  dz/dx given as a fixed array made from shapes alone (no recorded input)."""

    def forward(self, x):
        self.shape = x.shape
        return x * 1.0

    def backward(self, g):
        return np.full(self.shape, 0.5)


def _train(compiled, calls=4):
    W = tl.Tensor(np.full(3, 2.0), requires_grad=True)
    opt = tl.optim.SGD([W], lr=0.1)

    def step():
        opt.zero_grad()
        loss = ConstantGradient.apply(W).sum()
        loss.backward()
        return loss
    run = tl.compile(step) if compiled else step
    for _ in range(calls):
        run()
        W.grad *= 2  # the learner scales the gradient in place, outside the step
        opt.step()
    return W.data.copy()


def test_a_constant_gradient_written_into_outside_the_step_stays_the_same_next_call():
    np.testing.assert_array_equal(_train(True), _train(False))


def test_the_penalty_scale_is_computed_once_above_the_step_and_equals_eager():
    def run(compiled):
        model = tl.nn.MLP([6, 5, 3], kernel_regularizer=tl.nn.L2(1e-2), dtype=np.float64, rng=0)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        x, y = np.random.default_rng(1).standard_normal((4, 6)), np.array([0, 2, 1, 2])
        rows = np.arange(4)

        def step():
            opt.zero_grad()
            loss = -model(x).log_softmax(-1)[rows, y].mean() + model.regularization_loss()
            loss.backward()
            opt.step()
            return loss
        fn = tl.compile(step) if compiled else step
        losses = [fn().item() for _ in range(4)]
        return losses, [p.data.copy() for p in model.parameters()], fn
    (want, eager, _), (got, compiled, fn) = run(False), run(True)
    header = fn.source.split("def step")[0]
    assert "dloss = np.ones((), dtype=np.float64)" in header and "kappa = (dloss * 0.01) * 2" in header
    assert fn.source.count("kappa * W") == 2  # one κ, shared by both weights: dW gains κ·W
    assert got == want
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
