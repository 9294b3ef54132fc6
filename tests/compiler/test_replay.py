"""tl.compile: replayed steps equal eager steps, retrace on what the trace depends on, the
verification mode catches what the trace cannot see, and the source reads like backprop."""
import ast
import re
import threading

import numpy as np
import pytest

import tinygrad_l2 as tl

OPTIMIZERS = {
    "sgd": lambda ps: tl.optim.SGD(ps, lr=0.1),
    "sgd momentum": lambda ps: tl.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "sgd weight decay": lambda ps: tl.optim.SGD(ps, lr=0.1, weight_decay=1e-2),
    "adam": lambda ps: tl.optim.Adam(ps, lr=1e-2),
    "adamw": lambda ps: tl.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
}


def setup(make_optimizer, seed=0, dtype=np.float64):
    tl.manual_seed(seed)
    l2 = tl.nn.L2(1e-2)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8, kernel_regularizer=l2, dtype=dtype), tl.nn.ReLU(),
                             tl.nn.Linear(8, 3, kernel_regularizer=l2, dtype=dtype))
    opt = make_optimizer(model.parameters())

    def step(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


def batches(n, m=6, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((m, 4)), rng.integers(0, 3, m)) for _ in range(n)]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_steps_equal_eager_steps_with_new_batches(name):
    eager_model, eager_opt, eager_step = setup(OPTIMIZERS[name])
    model, opt, step = setup(OPTIMIZERS[name])
    compiled = tl.compile(step)
    for x, y in batches(15):
        want, got = eager_step(x, y), compiled(x, y)
        assert got.item() == pytest.approx(want.item(), rel=1e-12)
    assert compiled.traces == 1
    for (_, a), (_, b) in zip(eager_model.named_parameters(), model.named_parameters()):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b.grad, a.grad, rtol=1e-10, atol=1e-13)
    assert len(opt.state_dict()["state"]) == len(eager_opt.state_dict()["state"])


def test_each_batch_shape_is_traced_once_and_kept_and_stays_exact():
    eager_model, _, eager_step = setup(OPTIMIZERS["sgd"])
    model, _, step = setup(OPTIMIZERS["sgd"])
    compiled = tl.compile(step)
    for x, y in batches(3, m=6) + batches(3, m=9, seed=2) + batches(2, m=6, seed=3):
        assert compiled(x, y).item() == pytest.approx(eager_step(x, y).item(), rel=1e-12)
    assert compiled.traces == 2  # m=6, m=9; m=6 again replays the first trace, kept
    np.testing.assert_allclose(model[0].weight.data, eager_model[0].weight.data, rtol=1e-10)


def test_a_learning_rate_schedule_is_honoured_without_retracing():
    eager_model, eager_opt, eager_step = setup(OPTIMIZERS["sgd momentum"])
    model, opt, step = setup(OPTIMIZERS["sgd momentum"])
    compiled = tl.compile(step)
    schedules = [tl.optim.lr_scheduler.StepLR(o, 2, 0.5) for o in (eager_opt, opt)]
    for x, y in batches(8):
        eager_step(x, y), compiled(x, y)
        for s in schedules:
            s.step()
    assert compiled.traces == 1 and opt.param_groups[0]["lr"] == eager_opt.param_groups[0]["lr"] < 0.05
    np.testing.assert_allclose(model[2].weight.data, eager_model[2].weight.data, rtol=1e-10)


def test_a_function_that_only_calls_backward_leaves_grad_as_eager():
    model = tl.nn.Linear(4, 2, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=0)

    def loss_and_backward(x):
        loss = model(x).sum() + model.regularization_loss()
        loss.backward()  # no zero_grad: gradients accumulate, as eager
        return loss
    compiled = tl.compile(loss_and_backward)
    x = np.ones((3, 4))
    for _ in range(3):
        compiled(x)
    reference = tl.nn.Linear(4, 2, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=0)
    (reference(x).sum() + reference.regularization_loss()).backward()
    np.testing.assert_allclose(model.weight.grad, 3 * reference.weight.grad, rtol=1e-12)
    np.testing.assert_allclose(model.bias.grad, 3 * reference.bias.grad, rtol=1e-12)


def test_a_closure_captured_tensor_is_read_each_call_so_a_change_is_seen():
    w = tl.Tensor(np.ones(3), requires_grad=True, name="w")
    opt = tl.optim.SGD([w], lr=0.1)
    captured = tl.Tensor(np.array([1.0, 2.0, 3.0]))  # not an argument

    def step(x):
        opt.zero_grad()
        loss = (w * x * captured).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    compiled(np.ones(3))
    captured.data = np.array([5.0, 5.0, 5.0])
    assert compiled(np.ones(3)).item() == 15.0
    assert "\ndef step(x, captured):" in compiled.source and compiled.traces == 1


def test_check_mode_names_what_data_dependent_control_flow_changed():
    w = tl.Tensor(np.ones(3), requires_grad=True, name="w")
    opt = tl.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        scale = 2.0 if float(x.sum()) > 0 else -3.0  # Python control flow on data (numpy x)
        loss = (w * x).sum() * scale
        loss.backward()
        return loss
    compiled = tl.compile(step, check=5)
    compiled(np.ones(3))
    compiled(np.ones(3))  # checked: the same branch, agrees
    with pytest.raises(tl.CompileCheckError, match="returned tensor 0 differs"):
        compiled(-np.ones(3))


def test_source_compiles_names_the_tensors_and_l2_lines_touch_only_weights():
    _, _, step = setup(OPTIMIZERS["sgd"])
    compiled = tl.compile(step)
    x, y = batches(1)[0]
    compiled(x, y)
    source = compiled.source
    tree = ast.parse(source)
    assert [f.name for f in tree.body if not isinstance(f, ast.Assign)] == ["step"]  # and numbers
    for name in ("W1", "b1", "W2", "b2", "Z1", "A1", "dZ1", "dW1", "db1", "dA1"):
        assert f"    {name} = " in source, name
    assignments = [line.split("#")[0].split(" = ", 1) for line in source.splitlines()
                   if " = " in line.split("#")[0]]
    penalty = {target.strip() for target, _ in assignments[:0]} | {
        line.split(" = ")[0].strip() for line in source.splitlines() if "# penalty term" in line}
    for _ in range(3):  # what the penalty's lines flow into, to a fixed point
        penalty |= {t.strip() for t, rhs in assignments
                    if any(re.search(rf"\b{p}\b", rhs) for p in penalty) and t.strip().startswith("d")}
    gradients = {t for t in penalty if t.startswith("d") and t != "dloss"}
    assert {"dW1", "dW2"} <= gradients
    assert not gradients & {"db1", "db2", "dA1", "dZ1", "dZ2", "dM1", "dM2"}


def test_a_concurrent_call_is_refused():
    started, release = threading.Event(), threading.Event()

    def slow(x):
        started.set()
        release.wait(5)
        return (tl.Tensor(np.ones(1), requires_grad=True) * x).sum()
    compiled = tl.compile(slow)
    thread = threading.Thread(target=compiled, args=(np.ones(1),))
    thread.start()
    started.wait(5)
    with pytest.raises(RuntimeError, match="not re-entrant"):
        compiled(np.ones(1))
    release.set()
    thread.join()


def test_custom_ops_and_convolutions_replay_through_their_own_methods():
    conv = tl.nn.Conv2d(1, 2, 3, padding="same", kernel_regularizer=tl.nn.L2(0.01), dtype=np.float64, rng=0)
    opt = tl.optim.SGD(conv.parameters(), lr=0.1)
    reference = tl.nn.Conv2d(1, 2, 3, padding="same", kernel_regularizer=tl.nn.L2(0.01), dtype=np.float64, rng=0)
    ref_opt = tl.optim.SGD(reference.parameters(), lr=0.1)

    def make(layer, optimizer):
        def step(x):
            optimizer.zero_grad()
            loss = (layer(x) ** 2).mean() + layer.regularization_loss()
            loss.backward()
            optimizer.step()
            return loss
        return step
    compiled, eager = tl.compile(make(conv, opt)), make(reference, ref_opt)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((2, 1, 5, 5))
        assert compiled(x).item() == pytest.approx(eager(x).item(), rel=1e-12)
    assert "OP" in compiled.source and compiled.traces == 1
    np.testing.assert_allclose(conv.weight.data, reference.weight.data, rtol=1e-12)


def test_float32_compiled_training_stays_within_1e_5_of_eager_over_20_steps():
    eager_model, _, eager_step = setup(OPTIMIZERS["sgd"], dtype=np.float32)
    model, _, step = setup(OPTIMIZERS["sgd"], dtype=np.float32)
    compiled = tl.compile(step)
    for x, y in batches(20):
        eager_step(x.astype(np.float32), y)
        compiled(x.astype(np.float32), y)
    for (_, a), (_, b) in zip(eager_model.named_parameters(), model.named_parameters()):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b.data, a.data, rtol=1e-5, atol=1e-7)


def test_gradients_handed_to_grad_are_never_the_compiled_steps_own_buffers():
    model, opt, step = setup(OPTIMIZERS["sgd"])
    compiled = tl.compile(step)
    data = batches(3)
    compiled(*data[0])
    compiled(*data[1])
    kept = {name: p.grad for name, p in model.named_parameters()}
    snapshot = {name: g.copy() for name, g in kept.items()}
    compiled(*data[2])  # a new step must not write into the arrays the user kept
    for name, g in kept.items():
        np.testing.assert_array_equal(g, snapshot[name])


def test_a_step_that_retains_an_intermediate_gradient_runs_eagerly():
    w = tl.Tensor(np.ones(2), requires_grad=True)

    def step(x):
        hidden = w * x
        hidden.retain_grad()
        loss = (hidden * hidden).sum()
        loss.backward()
        return loss, hidden
    compiled = tl.compile(step)
    for _ in range(2):
        _, hidden = compiled(np.array([1.0, 2.0]))
        np.testing.assert_array_equal(hidden.grad, [2.0, 4.0])  # as eager: the replay is eager
    assert compiled.source.startswith("# not compiled: an intermediate tensor called retain_grad()")


def test_an_eager_only_step_keeps_running_eagerly_and_correctly():
    w = tl.Tensor(np.ones(2), requires_grad=True)

    def step(x):
        loss = (w * x).sum()
        loss.backward(retain_graph=True)
        return loss
    compiled = tl.compile(step)
    for i in range(3):
        assert compiled(np.array([1.0, 2.0])).item() == 3.0
    np.testing.assert_array_equal(w.grad, [3.0, 6.0])  # three eager backward calls
    assert compiled.source.startswith("# not compiled: backward() with an explicit gradient or retain_graph")


def test_inputs_derived_inside_the_function_make_it_run_eagerly_not_stale():
    model, opt, _ = setup(OPTIMIZERS["sgd"])

    def step(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y.astype(np.int64))  # a copy of y
        loss.backward()
        opt.step()
        return loss
    compiled = tl.compile(step)
    (x1, y1), (x2, y2) = batches(2)
    compiled(x1, y1)
    assert compiled.source.startswith("# not compiled:")
    eager_model, eager_opt, _ = setup(OPTIMIZERS["sgd"])
    for x, y in ((x1, y1), (x2, y2)):
        eager_opt.zero_grad()
        tl.nn.softmax_cross_entropy(eager_model(x), y).backward()
        eager_opt.step()
    compiled(x2, y2)
    np.testing.assert_allclose(model[0].weight.data, eager_model[0].weight.data, rtol=1e-12)


def test_an_argument_that_requires_grad_runs_eagerly():
    w = tl.Tensor(np.ones(2), requires_grad=True)

    def step(x):
        loss = (w * x).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    compiled(x)
    assert compiled.source == "# not compiled: an argument requires grad"


def test_returned_tensors_are_never_overwritten_by_a_later_call():
    model, opt, _ = setup(OPTIMIZERS["sgd"])

    def step(x, y):
        opt.zero_grad()
        logits = model(x)  # Linear: MatMul then an Add that could be done in place
        loss = tl.nn.softmax_cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss, logits
    compiled = tl.compile(step)
    data = batches(3)
    compiled(*data[0])
    loss, logits = compiled(*data[1])
    kept = logits.data.copy(), loss.data.copy()
    compiled(*data[2])
    np.testing.assert_array_equal(logits.data, kept[0])
    np.testing.assert_array_equal(loss.data, kept[1])


@pytest.mark.parametrize("masked, replayed", [
    (lambda h: h * (h > 0), True), (lambda h: tl.where(h > 0, h, 0.0), True),  # ops: computed again
    (lambda h: h * (h.argmax(axis=1, keepdims=True) == 0), True),
    (lambda h: h[np.arange(h.shape[0]), h.data.argmax(1)], False)])  # numpy on .data: eager
def test_masks_and_indices_computed_from_data_are_never_replayed_stale(masked, replayed):
    w = tl.Tensor(np.array([[1.0, -1.0], [-1.0, 1.0]]), requires_grad=True)
    opt = tl.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = masked(x @ w).sum()
        loss.backward()
        opt.step()
        return loss
    compiled = tl.compile(step)
    reference_w = tl.Tensor(w.data.copy(), requires_grad=True)
    reference_opt = tl.optim.SGD([reference_w], lr=0.1)
    for sign in (1.0, -1.0, 1.0):  # the mask flips with the data
        x = sign * np.array([[2.0, 1.0], [1.0, 3.0]])
        got = compiled(x).item()
        reference_opt.zero_grad()
        want = masked(x @ reference_w).sum()
        want.backward()
        reference_opt.step()
        assert got == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(w.data, reference_w.data, rtol=1e-12)
    assert (compiled.fallback_reason is None) == replayed


def test_a_replay_that_fails_where_the_step_runs_says_so_and_runs_eagerly_from_then_on():
    """A fault in the generated code (here: a name it reads is gone) must not hide behind the
    eager re-run that gives an op's own error its own message: it is reported, once."""
    w = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)

    def step(x):
        loss = (w * x).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    compiled(np.ones(2))
    for fn in (compiled.program.function, getattr(compiled.program, "updating", None)):
        if fn is not None:
            del fn.__globals__["P0"]
    with pytest.warns(tl.CompileWarning, match="the replay raised NameError"):
        assert compiled(np.array([2.0, 3.0])).item() == -4.0
    assert "NameError" in compiled.fallback_reason
    np.testing.assert_array_equal(w.grad, [3.0, 4.0])
