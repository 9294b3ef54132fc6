"""tl.compile keeps Python's semantics: the replay returns what the function returns (numbers
from tensors recomputed each call), takes keyword arguments, retraces when something the trace
depends on changes, reads arrays from closures and globals each call, says once why a step
runs eagerly, and check=N uses a tolerance fit for the dtype."""
import collections
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl


def linear_step(dtype=np.float64, seed=0):
    """A model, its SGD and a step f(x, y) -> loss (a Tensor), as a user writes them."""
    tl.manual_seed(seed)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=dtype), tl.nn.ReLU(), tl.nn.Linear(8, 3, dtype=dtype))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def loss_of(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, loss_of


def data(n, m=6, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((m, 4)).astype(dtype), rng.integers(0, 3, m)) for _ in range(n)]


# ---- 1. the returned structure ------------------------------------------------------------

def _reporting_step(l2):
    """The README's network, reporting its data loss (read with .item()) apart from the L2
    penalty its regularizers add after the read."""
    tl.manual_seed(0)
    model = tl.nn.MLP((4, 8, 3), kernel_regularizer=l2, dtype=np.float64)
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        data_loss = tl.nn.softmax_cross_entropy(model(x), y)
        reported = data_loss.item()
        loss = data_loss + model.regularization_loss()
        loss.backward(); opt.step()
        return loss, reported
    return model, step


def test_the_data_loss_read_before_the_regularizers_penalty_is_added_replays_as_eager():
    """λ (guarded by value) and the penalty's 2.0 (a float constant of the package) are no
    numbers computed from the read: the step replays, with eager's results."""
    (eager_model, eager), (model, step) = _reporting_step(tl.nn.L2(1e-3)), _reporting_step(tl.nn.L2(1e-3))
    compiled = tl.compile(step)
    for x, y in data(3):
        (want, want_reported), (got, got_reported) = eager(x, y), compiled(x, y)
        assert got.item() == pytest.approx(want.item(), rel=1e-12)
        assert got_reported == pytest.approx(want_reported, rel=1e-12)
    assert compiled.fallback_reason is None and compiled.traces == 1
    for p, q in zip(eager_model.parameters(), model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12)


def test_a_count_read_with_item_is_told_from_an_equal_literal_returned_beside_it():
    """(count, 2) where the count is 2 when traced: Python shares one object for a small int,
    so the count must not be taken for the literal (nor the literal for it)."""
    def count(x, epoch):
        return (x > 0).sum().item(), 2
    compiled = tl.compile(count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for positives in (2, 1, 3, 2):
            x = tl.Tensor(np.array([1.0] * positives + [-1.0] * (4 - positives)))
            got = compiled(x, 2)
            assert got == (positives, 2) and type(got[0]) is int and type(got[1]) is int
    assert compiled.fallback_reason is None and compiled.traces == 1


def _scaled_by_a_read(use):
    """A step scaling its loss by a number it read from a tensor, and returning that number."""
    model, opt, _ = linear_step()

    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        s = logits.abs().mean().item()
        loss = use(tl.nn.softmax_cross_entropy(logits, y), s, logits)
        loss.backward(); opt.step()
        return loss, s
    return model, step


@pytest.mark.parametrize("use", [lambda loss, s, z: loss * s, lambda loss, s, z: loss.clip(min=s),
                                 lambda loss, s, z: loss + tl.full((), s, dtype=np.float64)],
                         ids=["operand", "keyword", "full"])
def test_a_number_read_from_a_tensor_and_given_to_an_op_runs_eagerly_never_stale(use):
    (eager_model, eager), (model, step) = _scaled_by_a_read(use), _scaled_by_a_read(use)
    compiled = tl.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for x, y in data(3):
            (want, want_s), (got, got_s) = eager(x, y), compiled(x, y)
            assert got.item() == want.item() and got_s == want_s
    assert "read from a tensor" in compiled.fallback_reason or "constant tensor" in compiled.fallback_reason
    for p, q in zip(eager_model.parameters(), model.parameters()):
        np.testing.assert_array_equal(q.data, p.data)


def test_a_returned_item_is_recomputed_each_call_as_a_python_float():
    _, _, eager = linear_step()
    _, _, inner = linear_step()
    compiled = tl.compile(lambda x, y: inner(x, y).item())
    for x, y in data(4):
        want, got = eager(x, y).item(), compiled(x, y)
        assert type(got) is float and got == pytest.approx(want, rel=1e-12)
    assert compiled.traces == 1 and compiled.fallback_reason is None


def test_float_and_int_of_a_tensor_are_recomputed_with_their_python_types():
    _, _, eager = linear_step()
    model, opt, _ = linear_step()

    def step(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y)
        per_mille = loss * 1000
        loss.backward()
        opt.step()
        return float(loss), int(per_mille), loss
    compiled = tl.compile(step)
    for x, y in data(3):
        want = eager(x, y)
        loss_float, loss_int, loss = compiled(x, y)
        assert type(loss_float) is float and loss_float == pytest.approx(want.item(), rel=1e-12)
        assert type(loss_int) is int and abs(loss_int - int(want.item() * 1000)) <= 1
        assert isinstance(loss, tl.Tensor) and loss.item() == loss_float
    assert compiled.fallback_reason is None


def test_none_dicts_lists_strings_and_constants_keep_their_place_and_type():
    _, _, eager = linear_step()
    _, _, inner = linear_step()
    Result = collections.namedtuple("Result", "loss extra")

    def step(x, y):
        loss = inner(x, y)
        return {"loss": loss, "value": loss.item(), "half": 0.5, "none": None,
                "list": [loss, "tag", 3], "pair": Result(loss, (None,))}
    compiled = tl.compile(step)
    for x, y in data(3):
        want, got = eager(x, y).item(), compiled(x, y)
        assert list(got) == ["loss", "value", "half", "none", "list", "pair"]
        assert got["value"] == pytest.approx(want, rel=1e-12) and got["loss"].item() == got["value"]
        assert got["half"] == 0.5 and type(got["half"]) is float and got["none"] is None
        assert type(got["list"]) is list and got["list"][1:] == ["tag", 3] and got["list"][0] is got["loss"]
        assert type(got["pair"]) is Result and got["pair"].extra == (None,) and got["pair"].loss is got["loss"]
    assert compiled.traces == 1 and compiled.fallback_reason is None


def test_a_step_that_returns_none_returns_none_and_a_pair_stays_a_pair():
    _, _, inner = linear_step()
    nothing = tl.compile(lambda x, y: (inner(x, y), None)[1])
    pair = tl.compile(lambda x, y: (inner(x, y), 0.5))
    for x, y in data(3):
        assert nothing(x, y) is None
        loss, half = pair(x, y)
        assert isinstance(loss, tl.Tensor) and half == 0.5
    assert nothing.fallback_reason is None and pair.fallback_reason is None


def test_a_number_computed_from_arrays_not_by_item_runs_eagerly_not_stale():
    _, _, eager = linear_step()
    _, _, inner = linear_step()
    compiled = tl.compile(lambda x, y: (inner(x, y), np.float64(x.sum())))  # x: a numpy array
    with pytest.warns(tl.CompileWarning, match="number"):
        compiled(*data(1)[0])
    for x, y in data(3, seed=5):
        eager(x, y)
        assert compiled(x, y)[1] == np.float64(x.sum())


def test_a_number_read_from_a_tensor_and_kept_runs_eagerly_so_the_append_happens():
    _, _, inner = linear_step()
    history = []

    def step(x, y):
        loss = inner(x, y)
        history.append(loss.item())
        return loss
    compiled = tl.compile(step)
    with pytest.warns(tl.CompileWarning, match="did not return it"):
        for x, y in data(3):
            compiled(x, y)
    line = step.__code__.co_firstlineno + 2  # history.append(loss.item())
    assert len(history) == 3 and f"test_semantics.py:{line} " in compiled.fallback_reason


def test_python_control_flow_on_a_tensor_runs_eagerly_and_takes_each_branch():
    w = tl.Tensor(np.ones(2), requires_grad=True)

    def step(x):
        loss = (w * x).sum()
        if loss > 0:  # bool() of a tensor: the branch depends on the data
            loss = loss * 2
        loss.backward()
        return loss
    compiled = tl.compile(step)
    with pytest.warns(tl.CompileWarning, match="did not return"):
        assert compiled(np.ones(2)).item() == 4.0
    assert compiled(-np.ones(2)).item() == -2.0


def test_flatten_and_rebuild_put_new_tensors_and_numbers_in_the_traced_places():
    from tinygrad_l2.compiler.results import Unreplayable, flatten, rebuild
    a, b = tl.Tensor(np.array(1.5)), tl.Tensor(np.ones(2))
    value = a.item()
    tensors, template = flatten({"a": a, "n": [value, None, 0.5], "b": (b, a)}, [(a, value, tl.Tensor.item, "here")], [0.5])
    assert tensors == [a, b]
    new_a, new_b = tl.Tensor(np.array(7.0)), tl.Tensor(np.zeros(2))
    got = rebuild(template, [new_a, new_b])
    assert list(got) == ["a", "n", "b"] and got["a"] is new_a and got["n"] == [7.0, None, 0.5]
    assert type(got["b"]) is tuple and got["b"][0] is new_b and got["b"][1] is new_a
    with pytest.raises(Unreplayable, match="0.25"):
        flatten((a, 0.25), [], [0.5])  # a number that is neither read from a tensor nor a literal


# ---- 2. keyword arguments -------------------------------------------------------------------

def test_keyword_arguments_replay_and_are_part_of_the_trace_key():
    _, _, eager = linear_step()
    _, _, inner = linear_step()
    compiled = tl.compile(inner)
    for i, (x, y) in enumerate(data(6)):
        got = compiled(x, y=y) if i < 3 else compiled(x=x, y=y)  # then another key
        assert got.item() == pytest.approx(eager(x, y).item(), rel=1e-12)
    assert compiled.traces == 2 and compiled.fallback_reason is None


# ---- 3. guards --------------------------------------------------------------------------------

def test_a_step_traced_in_eval_mode_applies_dropout_after_train():
    def build():
        tl.manual_seed(0)
        model = tl.nn.Sequential(tl.nn.Linear(4, 3, dtype=np.float64), tl.nn.Dropout(0.5))
        return model, tl.no_grad()(lambda x: model(x).sum())  # (an inference step)
    (eager_model, eager), (model, step) = build(), build()
    compiled = tl.compile(step)
    x = data(1)[0][0]
    for m in (eager_model, model):
        m.eval()
    assert compiled(x).item() == pytest.approx(eager(x).item(), rel=1e-12)
    for m in (eager_model, model):
        m.train()
    for seed in (7, 8, 9):  # traced in train mode, then replayed: a new mask each call
        tl.manual_seed(seed)
        want = eager(x).item()
        tl.manual_seed(seed)
        assert compiled(x).item() == pytest.approx(want, rel=1e-12)
    assert compiled.traces == 2 and compiled.fallback_reason is None


def test_a_training_flag_read_from_a_closure_model_retraces():
    model = tl.nn.Linear(4, 3, dtype=np.float64, rng=0)

    @tl.no_grad()
    def step(x):  # forward() and the functional dropout: no module call to record
        return tl.nn.functional.dropout(model.forward(x), 0.5, training=model.training).sum()
    compiled, x = tl.compile(step), data(1)[0][0]
    model.eval()
    compiled(x)
    model.train()
    for seed in (3, 4):  # the dropout op draws its mask each call
        tl.manual_seed(seed)
        want = step(x).item()
        tl.manual_seed(seed)
        assert compiled(x).item() == want
    assert compiled.traces == 2 and compiled.fallback_reason is None


GLOBAL_MODEL = tl.nn.Linear(4, 3, dtype=np.float64, rng=0)
GLOBAL_OPT = tl.optim.SGD(GLOBAL_MODEL.parameters(), lr=0.1)


def global_step(x):
    GLOBAL_OPT.zero_grad()
    loss = (GLOBAL_MODEL(x) ** 2).mean()
    loss.backward()
    GLOBAL_OPT.step()
    return loss


def test_a_global_optimizer_rebound_to_adam_is_the_one_stepped():
    global GLOBAL_OPT
    compiled = tl.compile(global_step)
    x = data(1)[0][0]
    compiled(x), compiled(x)
    GLOBAL_OPT = tl.optim.Adam(GLOBAL_MODEL.parameters(), lr=0.01)
    compiled(x)
    assert len(GLOBAL_OPT.state) == 2  # Adam's moments exist: the new optimizer stepped
    assert compiled.traces == 2


def test_a_helper_function_redefined_is_the_one_called():
    """A notebook cell that redefines the loss: the step must use the new one."""
    w = tl.Tensor(np.ones(3), requires_grad=True)

    def loss_fn(z):
        return (z ** 2).sum()

    def step(x):
        loss = loss_fn(w * x)
        loss.backward()
        return loss
    compiled = tl.compile(step)
    compiled(np.ones(3))

    def loss_fn(z):  # noqa: F811 - redefined, as a re-run cell does
        return z.sum()
    assert compiled(np.ones(3)).item() == 3.0 and compiled.traces == 2


def test_a_closure_optimizer_rebound_is_the_one_stepped():
    model = tl.nn.Linear(4, 3, dtype=np.float64, rng=0)
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    compiled, x = tl.compile(step), data(1)[0][0]
    compiled(x), compiled(x)
    opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    compiled(x)
    assert all("momentum_buffer" in s for s in opt.state.values()) and compiled.traces == 2


def test_changed_hyper_parameters_step_through_the_optimizer_and_changed_groups_retrace():
    def run(change):
        model, opt, step = linear_step()
        compiled = tl.compile(step)
        for i, (x, y) in enumerate(data(4)):
            if i == 2:
                change(model, opt)
            compiled(x, y)
        return model, compiled.traces

    def reference(change):
        model, opt, step = linear_step()
        for i, (x, y) in enumerate(data(4)):
            if i == 2:
                change(model, opt)
            step(x, y)
        return model

    changes = [lambda m, o: o.param_groups[0].update(momentum=0.9),
               lambda m, o: o.param_groups[0].update(weight_decay=0.1),
               lambda m, o: o.param_groups[0].update(params=o.param_groups[0]["params"][:2])]
    for change, traces_wanted in zip(changes, [1, 1, 2]):  # (a hyper-parameter: no new trace)
        model, traces = run(change)
        want = reference(change)
        assert traces == traces_wanted
        for a, b in zip(want.parameters(), model.parameters()):
            np.testing.assert_allclose(b.data, a.data, rtol=1e-12)


def test_a_frozen_parameter_retraces_stays_frozen_and_is_read_each_call():
    model, _, step = linear_step()
    compiled = tl.compile(step)
    x, y = data(1)[0]
    compiled(x, y)
    model[0].weight.requires_grad = False
    frozen = model[0].weight.data.copy()
    first = compiled(x, y).item()
    assert compiled(x, y).item() != first  # the bias still trains
    np.testing.assert_array_equal(model[0].weight.data, frozen)
    model[0].weight.data = frozen * 2  # a frozen weight set by hand is read by the next call
    eager_loss = tl.nn.softmax_cross_entropy(model(tl.Tensor(x)), y).item()
    assert compiled(x, y).item() == pytest.approx(eager_loss, rel=1e-12)
    assert compiled.traces == 2 and compiled.fallback_reason is None


def test_arrays_from_the_enclosing_scope_are_read_each_call_and_compiled():
    """The usual hand-written cross-entropy, rows and labels from the enclosing scope."""
    eager_y, y = np.zeros(6, dtype=np.int64), np.zeros(6, dtype=np.int64)
    (eager_model, eager), (model, step) = _scope_rows_step(np.arange(6), eager_y), _scope_rows_step(np.arange(6), y)
    compiled = tl.compile(step)
    for x, labels in data(5):
        eager_y[:], y[:] = labels, labels  # the same array, changed in place
        assert compiled(x).item() == pytest.approx(eager(x).item(), rel=1e-12)
    assert compiled.fallback_reason is None and compiled.traces == 1
    for p, q in zip(model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)


def _scope_rows_step(rows, y, dtype=np.float64):
    """A model, and the PyTorch-style step over `rows` and `y` from its enclosing scope."""
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=dtype), tl.nn.ReLU(), tl.nn.Linear(5, 3, dtype=dtype))
    opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)

    def step(x):
        opt.zero_grad()
        logp = model(x).log_softmax(-1)
        loss = -logp[rows, y].mean()
        loss.backward()
        opt.step()
        return loss
    return model, step


def test_scope_rows_that_are_arange_get_the_fused_cross_entropy_bit_for_bit():
    rows, y = np.arange(6), np.array([0, 2, 1, 1, 0, 2])
    (eager_model, eager), (model, step) = _scope_rows_step(rows, y), _scope_rows_step(rows, y)
    compiled = tl.compile(step)
    for x, _ in data(4):
        assert compiled(x).item() == eager(x).item()
    assert "softmax − one-hot" in compiled.source and "zeros_like" not in compiled.source
    for p, q in zip(model.parameters(), eager_model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(p.grad, q.grad)


@pytest.mark.parametrize("new_rows", [[0, 0, 1, 2, 3, 4], [5, 4, 3, 2, 1, 0], [-6, -5, -4, -3, -2, -1]])
def test_scope_rows_changed_in_place_from_arange_trace_again_never_replay_the_fused_gradient(new_rows):
    """The fused softmax − one-hot holds only for rows = arange(m): repeated, permuted or
    negative rows changed in place make the step trace again (the general backward)."""
    rows, y = np.arange(6), np.array([0, 2, 1, 1, 0, 2])
    eager_rows = rows.copy()
    (eager_model, eager), (model, step) = _scope_rows_step(eager_rows, y), _scope_rows_step(rows, y)
    compiled = tl.compile(step)
    batches = data(4)
    for k, (x, _) in enumerate(batches):
        if k == 2:
            rows[:], eager_rows[:] = new_rows, new_rows
        np.testing.assert_allclose(compiled(x).item(), eager(x).item(), rtol=1e-13)
    assert compiled.traces == 2 and "zeros_like" in compiled.source
    for p, q in zip(model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-15)


def test_the_array_inputs_interface_reads_closure_cells_and_globals_now():
    from tinygrad_l2.compiler.guards import array_inputs
    scale = np.ones(3)
    labels = tl.Tensor(np.zeros(3))

    def step(x):
        return x * scale + labels + GLOBAL_ARRAY
    names = {name: read for name, read in array_inputs(step)}
    assert set(names) == {"scale", "labels", "GLOBAL_ARRAY"}
    scale = np.full(3, 2.0)  # noqa: F841 - rebinding the cell the reader reads
    assert names["scale"]() is scale and names["GLOBAL_ARRAY"]() is GLOBAL_ARRAY
    assert names["labels"]() is labels


GLOBAL_ARRAY = np.arange(3.0)


# ---- 3b. kept traces ---------------------------------------------------------------------------

def test_a_smaller_last_batch_is_traced_once_per_shape_over_epochs():
    _, _, eager = linear_step()
    _, _, inner = linear_step()
    compiled = tl.compile(inner)
    epoch = data(2, m=6) + data(1, m=4, seed=2)  # drop_last=False: a smaller last batch
    for _ in range(3):
        for x, y in epoch:
            assert compiled(x, y).item() == eager(x, y).item()
    assert compiled.traces == 2 and compiled.fallback_reason is None


def test_a_scope_number_set_back_replays_the_trace_kept_for_it():
    tl.manual_seed(0)
    model = tl.nn.Linear(4, 3, dtype=np.float64)
    global SCALE

    @tl.no_grad()
    def step(x):
        return (model(x) * SCALE).sum()
    compiled = tl.compile(step)
    x = data(1)[0][0]
    for scale in (1.0, 2.0, 1.0, 2.0):
        SCALE = scale
        assert compiled(x).item() == step(x).item()
    assert compiled.traces == 2


SCALE = 1.0


def test_the_least_recently_used_trace_is_dropped_beyond_the_kept_number():
    from tinygrad_l2.compiler import KEPT_TRACES
    _, _, inner = linear_step()
    compiled = tl.compile(inner)
    shapes = list(range(1, KEPT_TRACES + 2))  # one more batch size than kept
    for m in shapes + [shapes[-1], shapes[1]]:  # the last and the second one replay
        compiled(*data(1, m=m)[0])
    assert compiled.traces == KEPT_TRACES + 1
    compiled(*data(1, m=shapes[0])[0])  # the first was dropped: traced again
    assert compiled.traces == KEPT_TRACES + 2


def test_a_step_traced_again_on_every_call_runs_eagerly_after_twice_the_kept_traces():
    """A guard that fails every call (a global number that changes each time) would trace
    every call, slower than eager: after 2 × KEPT_TRACES traces in a row it runs eagerly, and
    says so (torch.compile falls back at its cache_size_limit)."""
    from tinygrad_l2.compiler import KEPT_TRACES
    global SCALE
    _, _, eager = linear_step()
    _, _, inner = linear_step()
    compiled = tl.compile(lambda x, y: inner(x, y) * SCALE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for call, (x, y) in enumerate(data(2 * KEPT_TRACES + 2)):
            SCALE = 1.0 + call
            assert compiled(x, y).item() == pytest.approx((eager(x, y) * SCALE).item(), rel=1e-12)
    SCALE = 1.0
    assert compiled.traces == 2 * KEPT_TRACES and "calls in a row" in compiled.fallback_reason


def test_retrace_drops_every_kept_trace():
    _, _, inner = linear_step()
    compiled = tl.compile(inner)
    for m in (6, 4):
        compiled(*data(1, m=m)[0])
    compiled.retrace()
    for m in (6, 4, 6):
        compiled(*data(1, m=m)[0])
    assert compiled.traces == 4


def test_an_error_after_the_step_changed_state_is_raised_as_is_never_run_twice():
    """A replay that fails after the parameters were updated (here: a schedule whose function
    divides by zero at the third epoch) raises as eager does: running the step eagerly again
    would update them twice."""
    def build():
        tl.manual_seed(0)
        model = tl.nn.Linear(4, 3, dtype=np.float64)
        opt = tl.optim.SGD(model.parameters(), lr=0.1)
        schedule = tl.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1 / (3 - epoch))

        def step(x, y):
            opt.zero_grad()
            loss = tl.nn.softmax_cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            schedule.step()
            return loss
        return model, step
    (eager_model, eager), (model, step) = build(), build()
    compiled = tl.compile(step)
    (x, y), = data(1)
    for _ in range(2):
        assert compiled(x, y).item() == eager(x, y).item()
    for fn in (compiled, eager):
        with pytest.raises(ZeroDivisionError):
            fn(x, y)
    np.testing.assert_array_equal(model.weight.data, eager_model.weight.data)


# ---- 4. the fallback is reported once -------------------------------------------------------

def test_a_step_that_cannot_be_compiled_warns_once_naming_reason_and_line():
    w = tl.Tensor(np.ones(3), requires_grad=True)

    def step(x):
        loss = (w * x).sum()
        loss.backward(retain_graph=True)
        return loss
    compiled = tl.compile(step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            compiled(np.ones(3))
    ours = [w for w in caught if issubclass(w.category, tl.CompileWarning)]
    assert len(ours) == 1 and issubclass(tl.CompileWarning, UserWarning)
    message = str(ours[0].message)
    assert "retain_graph" in message and f"test_semantics.py:{step.__code__.co_firstlineno}" in message
    assert "retain_graph" in compiled.fallback_reason


def test_a_compiled_step_has_no_fallback_reason():
    _, _, step = linear_step()
    compiled = tl.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tl.CompileWarning)
        compiled(*data(1)[0])
    assert compiled.fallback_reason is None


def test_retrace_lets_a_step_that_ran_eagerly_compile_again():
    _, _, inner = linear_step()
    options = {"extra": True}

    def step(x, y):
        loss = inner(x, y)
        return (loss, np.float64(1.0)) if options["extra"] else (loss, None)
    compiled = tl.compile(step)
    with pytest.warns(tl.CompileWarning):
        compiled(*data(1)[0])
    options["extra"] = False
    compiled.retrace()
    assert compiled.fallback_reason is None
    compiled(*data(1)[0])
    assert compiled.fallback_reason is None and "\ndef step" in "\n" + compiled.source


# ---- 5. check=N --------------------------------------------------------------------------------

def mlp_step(dtype, l2, zero_grad_last=True):
    """The README's kind of network; with zero_grad last and plain SGD the update is written in."""
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(20, 64, kernel_regularizer=l2, dtype=dtype), tl.nn.ReLU(),
                             tl.nn.Linear(64, 64, kernel_regularizer=l2, dtype=dtype), tl.nn.ReLU(),
                             tl.nn.Linear(64, 10, kernel_regularizer=l2, dtype=dtype))
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        if not zero_grad_last:
            opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        if zero_grad_last:
            opt.zero_grad()
        return loss
    return step


@pytest.mark.parametrize("batch", [32, 256])
@pytest.mark.parametrize("zero_grad_last", [True, False])
def test_check_accepts_a_correct_float32_mlp(batch, zero_grad_last):
    compiled = tl.compile(mlp_step(np.float32, tl.nn.L2(1e-3), zero_grad_last), check=8)
    rng = np.random.default_rng(0)
    for _ in range(10):
        compiled(rng.standard_normal((batch, 20)).astype(np.float32), rng.integers(0, 10, batch))
    assert compiled.checks_left == 0


class _Plain:
    """An object of the user's own (neither a module, a regularizer nor a config)."""


def test_check_compares_returned_numbers_and_structure_at_the_tensors_dtype():
    model, opt, _ = linear_step(np.float32)
    flip = _Plain()  # an object of the user's own: its attributes are not guarded
    flip.extra = False

    def step(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return {"loss": loss, "value": loss.item(), **({"extra": None} if flip.extra else {})}
    compiled = tl.compile(step, check=8)
    for x, y in data(3, dtype=np.float32):
        compiled(x, y)  # float32 loss, its float64 item(): both within float32 rounding
    flip.extra = True  # read from the object: the replay keeps the traced structure
    with pytest.raises(tl.CompileCheckError, match="returned structure"):
        compiled(*data(1, dtype=np.float32)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_still_catches_a_change_the_trace_cannot_see(dtype):
    model, opt, _ = linear_step(dtype)
    weights = _Plain()  # an object of the user's own: its attributes are not guarded
    weights.first = 1.0

    def step(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y) * weights.first
        loss.backward(); opt.step()
        return loss
    compiled = tl.compile(step, check=8)
    rng = np.random.default_rng(0)
    batch = lambda: (rng.standard_normal((32, 4)).astype(dtype), rng.integers(0, 3, 32))  # noqa: E731
    compiled(*batch()), compiled(*batch())
    weights.first = 2.0  # changed in place: the replay keeps the traced 1.0
    with pytest.raises(tl.CompileCheckError, match="differs"):
        compiled(*batch())


CONFIG = {"lam": 1e-3, "schedule": [1.0, 1.0]}  # a global config dict the learner edits


def _scope_config_step(where, seen):
    """A step scaling its penalty by what it reads in its scope: a global dict (nested), or
    the length of a closure list (picking a branch)."""
    model, opt, _ = linear_step()

    def step(x, y):
        opt.zero_grad()
        if where == "global_dict_nested":
            lam = CONFIG["lam"] * CONFIG["schedule"][-1]
        else:
            lam = 1e-3 if len(seen) < 2 else 0.5
        loss = tl.nn.softmax_cross_entropy(model(x), y) + lam * (model[0].weight ** 2).sum()
        loss.backward(); opt.step()
        return loss
    return model, step


@pytest.mark.parametrize("where", ["global_dict_nested", "closure_list_length"])
def test_a_dict_or_list_of_the_scope_changed_in_place_retraces_instead_of_replaying_stale(where):
    CONFIG.update(lam=1e-3, schedule=[1.0, 1.0])
    seen = []
    (eager_model, eager), (model, step) = _scope_config_step(where, seen), _scope_config_step(where, seen)
    compiled = tl.compile(step)
    for call, (x, y) in enumerate(data(4)):
        want, got = eager(x, y).item(), compiled(x, y).item()
        assert got == pytest.approx(want, rel=1e-12), call
        CONFIG["schedule"].append(0.5 ** call) if call else CONFIG.update(lam=2e-3)
        seen.append(call)
    assert compiled.fallback_reason is None and compiled.traces == 4
    for p, q in zip(eager_model.parameters(), model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12)


def test_a_regularizers_lambda_set_in_place_retraces_instead_of_replaying_stale():
    l2 = tl.nn.L2(1e-3)
    compiled = tl.compile(mlp_step(np.float64, l2), check=8)  # (check compares with eager)
    rng = np.random.default_rng(0)
    batch = lambda: (rng.standard_normal((32, 20)), rng.integers(0, 10, 32))  # noqa: E731
    compiled(*batch()), compiled(*batch())
    l2.lam = 2e-3
    compiled(*batch())
    assert compiled.traces == 2


def test_check_tolerance_scales_with_the_dtype():
    from tinygrad_l2.compiler.check import agree
    want = np.linspace(1, 2, 100)
    for dtype in (np.float32, np.float64):
        eps = np.finfo(dtype).eps
        assert agree(want.astype(dtype) * (1 + eps), want.astype(dtype))
        assert not agree(want.astype(dtype) * (1 + 1e4 * eps), want.astype(dtype))
    assert not agree(np.array([1, 2]), np.array([1, 3])) and agree(np.zeros(3), np.zeros(3))


def test_a_mode_the_step_sets_itself_is_replayed_as_an_event():
    """train() inside the step is replayed (the model leaves the call in training mode) and the
    mode the call was entered in does not matter, since the step sets it before using it."""
    def run(compiled):
        tl.manual_seed(0)
        model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=np.float64), tl.nn.Dropout(0.5),
                                 tl.nn.Linear(8, 3, dtype=np.float64))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            model.train(); opt.zero_grad()
            loss = tl.nn.softmax_cross_entropy(model(x), y); loss.backward(); opt.step()
            return loss
        step = tl.compile(step) if compiled else step
        seen = []
        for x, y in data(4):
            model.eval()  # (an evaluation between steps)
            seen.append((step(x, y).item(), model.training))
        return seen, step
    (want, _), (got, compiled) = run(False), run(True)
    assert got == pytest.approx(want, rel=1e-12) and all(mode for _, mode in got)
    assert compiled.traces == 1 and compiled.fallback_reason is None


def test_a_regularizers_lambda_and_a_dropout_rate_set_in_place_are_used_by_the_next_call():
    def run(compiled):
        tl.manual_seed(0)
        penalty = tl.nn.L2(0.01)
        model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=np.float64, kernel_regularizer=penalty),
                                 tl.nn.Dropout(0.2), tl.nn.Linear(8, 3, dtype=np.float64))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
            loss.backward(); opt.step()
            return loss
        step = tl.compile(step) if compiled else step
        seen = []
        for call, (x, y) in enumerate(data(4)):
            penalty.lam, model[1].p = 0.01 * (call + 1), 0.2 + 0.1 * call  # annealed between calls
            tl.manual_seed(call)
            seen.append(step(x, y).item())
        return seen, step
    (want, _), (got, compiled) = run(False), run(True)
    assert got == pytest.approx(want, rel=1e-12) and compiled.fallback_reason is None
    assert compiled.traces == 4  # (each change is a new trace, never a stale replay)
