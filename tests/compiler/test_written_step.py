"""opt.step() written into the compiled step: the optimizer's own update() per parameter, run
on recorded arrays, so a compiled step equals the eager one bit for bit, in the order PyTorch
users write (zero_grad first, gradients kept) and the other, for every built-in optimizer."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.compiler.update import FusedUpdate

OPTIMIZERS = {
    "sgd": lambda ps: tl.optim.SGD(ps, lr=0.1),
    "sgd weight decay": lambda ps: tl.optim.SGD(ps, lr=0.1, weight_decay=0.01),
    "sgd momentum": lambda ps: tl.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1),
    "sgd nesterov": lambda ps: tl.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: tl.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    "adam amsgrad": lambda ps: tl.optim.Adam(ps, lr=1e-2, amsgrad=True),
    "adamw": lambda ps: tl.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "two groups": lambda ps: tl.optim.SGD([{"params": ps[::2], "weight_decay": 0.01},
                                           {"params": ps[1::2], "lr": 0.2}], lr=0.1, momentum=0.5),
}


def run(make_optimizer, compiled, order="torch", steps=8, dtype=np.float64):
    model = tl.nn.MLP([4, 8, 3], kernel_regularizer=tl.nn.L2(1e-2), dtype=dtype, rng=0)
    opt = make_optimizer(list(model.parameters()))

    def step(x, y):
        if order == "torch":
            opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        if order == "zero_grad last":
            opt.zero_grad()
        return loss
    fn = tl.compile(step) if compiled else step
    rng = np.random.default_rng(1)
    losses = [fn(rng.standard_normal((6, 4)).astype(dtype), rng.integers(0, 3, 6)).item()
              for _ in range(steps)]
    return losses, model, opt, fn


@pytest.mark.parametrize("order", ["torch", "zero_grad last"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_written_step_equals_eager_bit_for_bit(name, order):
    want, eager, eager_opt, _ = run(OPTIMIZERS[name], False, order)
    got, model, opt, step = run(OPTIMIZERS[name], True, order)
    if isinstance(step.program.update, FusedUpdate):  # lr in the seed, L2 as decay: rounding
        assert got == pytest.approx(want, rel=1e-13)
        for p, q in zip(model.parameters(), eager.parameters()):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)
        return
    assert got == pytest.approx(want, rel=1e-13)  # the loss's Σw² is a BLAS dot: its rounding is the CPU's
    for p, q in zip(model.parameters(), eager.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            np.testing.assert_array_equal(p.grad, q.grad)
    assert step.traces == 1 and step.program.update is not None and step.program.update.ready()


def test_adam_is_written_in_and_reads_its_moments_and_bias_corrections_each_call():
    _, _, _, step = run(OPTIMIZERS["adam"], True)
    assert ".advance(" in step.source and "['exp_avg']" in step.source
    assert "OBJ0.step()" not in step.source


def test_a_changed_hyper_parameter_runs_the_optimizers_own_step_instead():
    got, model, opt, step = run(OPTIMIZERS["sgd momentum"], True, steps=3)
    opt.param_groups[0]["momentum"] = 0.5  # not what was written: opt.step() runs instead
    assert step.guards.changed() is None and not step.program.update.ready()
    want, eager, eager_opt, _ = run(OPTIMIZERS["sgd momentum"], False, steps=3)
    eager_opt.param_groups[0]["momentum"] = 0.5
    rng = np.random.default_rng(7)
    for _ in range(3):
        x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
        eager_opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(eager(x), y) + eager.regularization_loss()
        loss.backward()
        eager_opt.step()
        assert step(x, y).item() == loss.item()
    assert step.traces == 1


def test_a_backward_after_the_step_reads_the_weights_from_before_it():
    """forward → opt.step() → zero_grad → backward (the step uses last call's gradients)."""
    results = []
    for compiled in (False, True):
        model = tl.nn.MLP([4, 8, 3], dtype=np.float64, rng=0)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            loss = tl.nn.softmax_cross_entropy(model(x), y)
            opt.step()
            opt.zero_grad()
            loss.backward()
            return loss
        fn = tl.compile(step) if compiled else step
        rng = np.random.default_rng(1)
        results.append([fn(rng.standard_normal((6, 4)), rng.integers(0, 3, 6)).item() for _ in range(5)])
    assert results[0] == results[1]
