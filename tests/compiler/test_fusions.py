"""Fused patterns in generated steps: Σw² as a dot product and the cross-entropy gradient
from the log-softmax's own array; exact, and never applied where an inner value is read."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.ops import row_indices


def run_both(make_step, steps=6, m=7, seed=0):
    """[(eager outputs, eager params), (compiled outputs, compiled params)] and the step."""
    results = []
    for compiled in (False, True):
        model = tl.nn.MLP((5, 6, 4), kernel_regularizer=tl.nn.L2(0.01), dtype=np.float64, rng=seed)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        step = make_step(model, opt)
        step = tl.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        outputs = []
        for _ in range(steps):
            out = step(tl.Tensor(rng.standard_normal((m, 5))), rng.integers(0, 4, m))
            outputs.append([o.data.copy() for o in (out if isinstance(out, tuple) else (out,))])
        results.append((outputs, [p.data.copy() for p in model.parameters()], step))
    return results


def cross_entropy_step(returns):
    def make(model, opt):
        def step(x, y):
            logits = model(x)
            log_p = logits.log_softmax(axis=1)
            loss = -log_p[row_indices(len(y)), y].mean() if returns == "log_p" else \
                tl.nn.softmax_cross_entropy(logits, y)
            total = loss + model.regularization_loss()
            total.backward()
            opt.step()
            opt.zero_grad()
            return {"loss": total, "logits": (total, logits), "log_p": (total, log_p)}[returns]
        return step
    return make


@pytest.mark.parametrize("returns", ["loss", "logits", "log_p"])
def test_compiled_cross_entropy_equals_eager(returns):
    (want, want_params, _), (got, got_params, step) = run_both(cross_entropy_step(returns))
    for a, b in zip(want, got):
        for x, y in zip(a, b):
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-14)
    for x, y in zip(want_params, got_params):
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-14)
    assert step.source.startswith("def step(")  # replayed, not run eagerly
    fused = "_ce_grad(" in step.source
    assert fused == (returns != "log_p")  # a returned log-softmax is never overwritten


def test_the_fused_loss_is_the_eager_loss_bit_for_bit():
    (want, _, _), (got, _, step) = run_both(cross_entropy_step("loss"), steps=1)
    assert "-(t" in step.source and got[0][0] == want[0][0]


def test_sum_of_squares_is_a_dot_product_only_when_nothing_else_reads_the_square():
    w = tl.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)

    def alone():
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    def shared():
        square = w ** 2
        loss = square.sum() + square.mean()
        loss.backward()
        return loss
    for fn, expected in ((alone, True), (shared, False)):
        step = tl.compile(fn)
        step()
        w.grad = None
        value = step().item()
        assert ("np.vdot(" in step.source) == expected
        assert value == pytest.approx(fn().item(), rel=1e-15)
        w.grad = None
