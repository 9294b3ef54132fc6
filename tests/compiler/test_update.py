"""The SGD update written into a compiled step (lr in the seed, L2 as a decay): exact up to
rounding, applied only when the gradients are dead after the step, and never when the
algebra does not hold for the optimizer in use."""
import ast

import numpy as np
import pytest

import tinygrad_l2 as tl


def network(dtype=np.float64, seed=0, sizes=(4, 8, 3), lam=1e-2):
    return tl.nn.MLP(sizes, kernel_regularizer=tl.nn.L2(lam), dtype=dtype, rng=seed)


def zero_grad_last(model, opt):
    def step(x, y):
        loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step


def pair(make_optimizer, dtype=np.float64, sizes=(4, 8, 3), lam=1e-2):
    """(eager model, eager opt, eager step), (model, opt, compiled step) from the same weights."""
    out = []
    for _ in range(2):
        model = network(dtype, sizes=sizes, lam=lam)
        opt = make_optimizer(model.parameters())
        out.append((model, opt, zero_grad_last(model, opt)))
    out[1] = (*out[1][:2], tl.compile(out[1][2]))
    return out


def batches(n, m=6, features=4, classes=3, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [(tl.Tensor(rng.standard_normal((m, features)).astype(dtype)), rng.integers(0, classes, m))
            for _ in range(n)]


def max_relative_difference(a, b):
    return max(float(np.max(np.abs(p.data - q.data)) / np.max(np.abs(p.data)))
               for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-5), (np.float64, 1e-9)])
def test_written_update_equals_eager_sgd_over_20_steps(dtype, tolerance):
    (eager, _, eager_step), (model, _, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.1), dtype,
                                                    sizes=(20, 16, 16, 3))
    for x, y in batches(20, m=8, features=20, dtype=dtype):
        want, got = eager_step(x, y), step(x, y)
        assert got.item() == pytest.approx(want.item(), rel=tolerance)
    assert "lr" in ast.parse(step.source).body[0].args.args[-1].arg  # the written update ran
    assert max_relative_difference(eager, model) <= tolerance
    assert all(p.grad is None for p in model.parameters())  # as zero_grad leaves them


def test_float32_keeps_a_small_l2_decay_that_1_minus_lr_kappa_would_round_away():
    """2·lr·λ = 2.5e-8: float32's 1 − 2.5e-8 is 1 (no decay at all).  Over 300 steps the
    compiled float32 weights must stay as close to float64 training as eager float32's."""
    lr, lam, data = 0.01, 1.25e-6, batches(1, m=8, features=20, dtype=np.float64)[0]
    runs = {}
    for name, dtype, compiled in [("truth", np.float64, False), ("eager", np.float32, False),
                                  ("compiled", np.float32, True)]:
        model = network(dtype, sizes=(20, 16, 3), lam=lam)
        step = zero_grad_last(model, tl.optim.SGD(model.parameters(), lr=lr))
        step = tl.compile(step) if compiled else step
        x = tl.Tensor(data[0].data.astype(dtype))
        for _ in range(300):
            step(x, data[1])
        runs[name] = np.concatenate([p.data.ravel().astype(np.float64) for p in model.parameters()])
    error = {name: np.linalg.norm(runs[name] - runs["truth"]) for name in ("eager", "compiled")}
    assert error["compiled"] <= 3 * error["eager"] + 1e-9 * np.linalg.norm(runs["truth"])
    assert "*= 1 -" not in step.source


def test_coupled_weight_decay_decays_every_parameter_as_eager_sgd_does():
    (eager, _, eager_step), (model, _, step) = pair(
        lambda ps: tl.optim.SGD(ps, lr=0.1, weight_decay=0.05))
    for x, y in batches(10):
        eager_step(x, y), step(x, y)
    assert "b1 *= 1 - (lr * 0.05)" in step.source
    assert max_relative_difference(eager, model) <= 1e-12


def test_a_learning_rate_schedule_reaches_the_seed():
    (eager, eager_opt, eager_step), (model, opt, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.2))
    schedulers = [tl.optim.lr_scheduler.StepLR(o, 2, 0.5) for o in (eager_opt, opt)]
    for x, y in batches(9):
        eager_step(x, y), step(x, y)
        for s in schedulers:
            s.step()
    assert step.traces == 1 and opt.param_groups[0]["lr"] == 0.2 * 0.5 ** 4
    assert max_relative_difference(eager, model) <= 1e-12


def test_only_weights_decay_biases_and_activations_get_no_l2_line():
    _, (model, _, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.1))
    x, y = batches(1)[0]
    step(x, y)
    decays = [line.split("*=")[0].strip() for line in step.source.splitlines() if "*= 1 -" in line]
    assert decays == ["W1", "W2"]
    penalty_targets = [line.split("=")[0].strip() for line in step.source.splitlines()
                       if "penalty term" in line and "=" in line]
    assert all(not t.startswith(("dA", "dZ", "db")) for t in penalty_targets)


@pytest.mark.parametrize("name, make", [
    ("adam", lambda ps: tl.optim.Adam(ps, lr=1e-2)),  # Adam on L2 is not AdamW: no decay rewrite
    ("adamw", lambda ps: tl.optim.AdamW(ps, lr=1e-2, weight_decay=0.1)),
    ("momentum", lambda ps: tl.optim.SGD(ps, lr=0.05, momentum=0.9)),
])
def test_the_update_is_not_written_where_the_identity_does_not_hold(name, make):
    (eager, _, eager_step), (model, _, step) = pair(make)
    for x, y in batches(8):
        eager_step(x, y), step(x, y)
    # the optimizer's own update is written in, but no L2-as-decay rewrite and no lr seed
    assert "the L2 gradient as weight decay" not in step.source and "def step(x, y):" in step.source
    assert "np.full((), lr" not in step.source and ".update" not in step.source
    assert max_relative_difference(eager, model) <= 1e-12


def test_gradients_that_survive_the_call_keep_the_update_out_of_the_step():
    model = network()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def zero_grad_first(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        return loss
    step = tl.compile(zero_grad_first)
    for x, y in batches(3):
        step(x, y)
    assert "the L2 gradient as weight decay" not in step.source
    assert "_accumulate_grads(" in step.source and all(p.grad is not None for p in model.parameters())


def test_a_gradient_present_before_the_call_is_accumulated_as_eager_does():
    (eager, _, eager_step), (model, _, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.1))
    data = batches(6)
    for x, y in data[:3]:
        eager_step(x, y), step(x, y)
    for m in (eager, model):  # a stray gradient: backward adds to it, step uses the sum
        m[0].weight.grad = np.full(m[0].weight.shape, 0.5)
    for x, y in data[3:]:
        eager_step(x, y), step(x, y)
    assert max_relative_difference(eager, model) <= 1e-12


def test_a_parameter_held_by_a_pending_graph_is_not_overwritten():
    (eager, _, eager_step), (model, _, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.1))
    data = batches(4)
    for x, y in data[:2]:
        eager_step(x, y), step(x, y)
    pending = [(m[0].weight * m[0].weight).sum() for m in (eager, model)]
    before = model[0].weight.data.copy()
    for x, y in data[2:]:
        eager_step(x, y), step(x, y)
    assert max_relative_difference(eager, model) <= 1e-12
    pending[1].backward()  # its saved W is still the old one: gradient 2·W_old
    np.testing.assert_array_equal(model[0].weight.grad, 2 * before)


def test_switching_to_several_parameter_groups_stops_the_written_update():
    (eager, eager_opt, eager_step), (model, opt, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.1))
    data = batches(6)
    for x, y in data[:3]:
        eager_step(x, y), step(x, y)
    for m, o in ((eager, eager_opt), (model, opt)):
        o.param_groups[0]["params"] = [m[0].weight, m[0].bias]
        o.add_param_group({"params": [m[2].weight, m[2].bias], "lr": 0.01})
    for x, y in data[3:]:
        eager_step(x, y), step(x, y)
    assert max_relative_difference(eager, model) <= 1e-12


LAM = 0.01  # a global the step reads: guarded


def test_a_changed_global_or_closure_number_retraces_instead_of_replaying_it():
    global LAM
    model = network()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    scale = [2.0]

    def make(factor):
        def step(x, y):
            weight = model[0].weight
            loss = tl.nn.softmax_cross_entropy(model(x), y) * factor + LAM * (weight * weight).sum()
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        return step
    step = tl.compile(make(scale[0]))
    x, y = batches(1)[0]
    first = step(x, y).item()
    assert step(x, y).item() != first and step.traces == 1
    LAM = 5.0
    try:
        loss = step(x, y)
        assert step.traces == 2 and "* 5.0" in step.source
        weight = model[0].weight.data
        expected = tl.nn.softmax_cross_entropy(model(x), y).item() * 2.0 + 5.0 * float(np.vdot(weight, weight))
        assert step(x, y).item() == pytest.approx(expected, rel=1e-12) and step.traces == 2
        assert loss.item() != pytest.approx(expected)
    finally:
        LAM = 0.01


def test_retrace_forces_a_new_trace_after_an_in_place_coefficient_change():
    (eager, _, eager_step), (model, _, step) = pair(lambda ps: tl.optim.SGD(ps, lr=0.1))
    data = batches(4)
    for x, y in data[:2]:
        eager_step(x, y), step(x, y)
    for m in (eager, model):
        m[0].kernel_regularizer.lam = 0.5  # in place: invisible to the trace
    step.retrace()
    for x, y in data[2:]:
        eager_step(x, y), step(x, y)
    assert step.traces == 2 and max_relative_difference(eager, model) <= 1e-12
