"""Compiled steps against the same steps run eagerly, round 15: what changed in round 14 —
tensors made inside the step taken as constants, requires_grad_() replayed as an event, ints
read with .item() traced as their own objects, numbers read from tensors and given to ops,
dicts and lists of the step's scope guarded by value, a forward compiled alone whose result is
differentiated after the call.  Built twice from the same seeds; after every call the loss and
every parameter must agree norm-wise (1e-12 in float64).

Found and fixed since, each failing before its fix:
- Silently wrong updates: a count read with .item() multiplying the loss (`loss * n`) or
  dividing the logits (a regression of round 14's TracedInt: tensor.py turned it into a new
  float; before it, such a step ran eagerly); a count given to an op as an exponent (`loss **
  n`), as where()'s operand or as a slice bound (`out[:n]`), or a number computed in Python
  from it (`correct / len(y)`, `float(n)`, `tl.ones(n + 1)`): such steps run eagerly now (after
  a step's first read, an op given a number refuses the replay, reads.py); a tensor frozen
  after the forward and unfrozen after opt.step() (eager's step skips it) was updated by every
  replay (no written update now when a flag changes before the step); the first item of a
  closure list longer than 256 items, changed between calls (now compared: its first 256);
  tl.full(shape, t) with t a 0-d tensor of the step was a constant of the trace.
- Crashes where eager runs: a forward compiled alone, first used for inference and trained
  from a later call, or differentiated with tl.grad, returned tensors without a graph (a
  function returning a tensor that requires grad without a backward() now runs eagerly); a
  tensor made by tl.zeros and returned was read-only from the first replay (now a copy).
- A NaN setting rebound between calls retraced every call; the first call returned a
  TracedInt (not an int) inside a dataclass, a set or as a dict key.

Holding, tested below: a tensor frozen and unfrozen twice before the forward, or frozen between
backward and opt.step() and unfrozen after it (momentum, Adam); writes into a tl.zeros
tensor's .data inside the step (run eagerly); a compiled forward used under tl.no_grad, then
trained; a list of weights in the closure rebound to another weight (retraces); a float16
round trip inside the graph under plain SGD at lr = 1e-5 (the learning rate stays out of the
seed).  Holding, not tested here: a compiled forward's result kept and differentiated calls
later (run eagerly); a compiled forward called inside a compiled step; a counter in a
300-item or a nested closure list changed by the step (run eagerly); a tuple of a list, a list
of nested dataclasses and a dict holding a generator, changed between calls (retrace); a
float16 buffer or a float16 view of a weight in the graph.  Seen, not tested: a global dict
whose array is replaced by the loop every call makes every call a new trace without a warning,
even when the step only names the dict in a branch it does not take."""
import dataclasses
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl

from twins import F64, agree, same

O, CE, NN = tl.optim, tl.nn.softmax_cross_entropy, tl.nn


def _mlp(seed=0):
    return NN.Sequential(NN.Linear(4, 5, dtype=F64, rng=seed), NN.Tanh(), NN.Linear(5, 3, dtype=F64, rng=seed + 1))


def _batches(calls=5):
    rng = np.random.default_rng(5)
    return [(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)) for _ in range(calls)]


def _counted(loss_of, calls=5):
    """A step returning (loss, correct), its loss `loss_of(out, y, correct)`: eager and compiled
    agree after every call on the loss, the count and each parameter; returns the compiled step."""
    runs = []
    for compiled in (False, True):
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad()
            out = net(X)
            correct = (out.argmax(1) == tl.Tensor(y)).sum().item()
            loss = loss_of(out, y, correct)
            loss.backward(); opt.step()
            return loss, correct
        run, seen = tl.compile(step) if compiled else step, []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            for X, y in _batches(calls):
                loss, correct = run(X, y)
                seen.append([np.array(loss.data), np.array(float(correct))] + [p.data.copy() for p in net.parameters()])
        runs.append(seen)
    agree(*runs)
    return run


# ---- a count read with .item() reaching an op: each must run eagerly or be right --------------

@pytest.mark.parametrize("route", ["factor", "divisor"])
def test_a_count_read_with_item_multiplying_the_loss_or_dividing_the_logits_is_used_as_eager(route):
    _counted(lambda out, y, n: CE(out, y) * n if route == "factor" else CE(out / n, y))


READ_INTO_OPS = {
    "exponent": lambda out, y, n: CE(out, y) ** n,
    "where_operand": lambda out, y, n: CE(tl.where(out > 0, out, n), y),
    "slice_bound": lambda out, y, n: CE(out, y) + out[:n].sum() * 0.1,
}


@pytest.mark.parametrize("route", READ_INTO_OPS)
def test_a_count_read_with_item_given_to_an_op_as_exponent_operand_or_slice_bound_is_used_as_eager(route):
    _counted(READ_INTO_OPS[route])


COMPUTED_FROM_A_READ = {
    "accuracy_weight": lambda out, y, n: CE(out, y) * (2.0 - n / len(y)),
    "float_of_the_count": lambda out, y, n: CE(out, y) * float(n),
    "ones_of_count_plus_one": lambda out, y, n: CE(out, y) + tl.ones(n + 1, dtype=F64).sum() * 0.1,
    "arange_to_float_count": lambda out, y, n: CE(out, y) + tl.arange(0.0, float(n), 1.0, dtype=F64).sum() * 0.1,
}


@pytest.mark.parametrize("route", COMPUTED_FROM_A_READ)
def test_a_number_computed_from_a_count_read_with_item_and_given_to_an_op_is_used_as_eager(route):
    _counted(COMPUTED_FROM_A_READ[route])


def _mean_target(make_target):
    def make():
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad()
            out = net(X)
            loss = CE(out, y) + ((out - make_target(out)) ** 2).mean(); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters())
    return make


def test_tl_full_of_a_0d_tensor_computed_in_the_step_is_filled_with_each_calls_value():
    same(_mean_target(lambda out: tl.full(out.shape, out.mean().detach(), dtype=F64)))


def test_a_float16_round_trip_inside_the_graph_keeps_the_learning_rate_out_of_the_seed():
    """float32 weights, the hidden layer rounded to float16 and back: plain SGD whose gradients
    die with the call (lr in the seed unless an array is narrower than float32), at lr = 1e-5."""
    def make():
        r = np.random.default_rng(0)
        W1, W2 = (tl.Tensor((r.standard_normal(s) * 0.5).astype(np.float32), requires_grad=True) for s in ((4, 16), (16, 3)))
        opt = O.SGD([W1, W2], lr=1e-5)

        def step(X, y):
            loss = CE((X @ W1).astype(np.float16).astype(np.float32).tanh() @ W2, y)
            loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, params=[W1, W2], dtype=np.float32)
    assert same(make).fallback_reason is None


# ---- requires_grad_() as a replayed event ------------------------------------------------------

def _frozen(when, optimizer="SGD", zero_grad_last=False):
    """A hand-written tensor W beside an MLP, frozen and unfrozen inside the step at `when`."""
    def make():
        net = _mlp()
        W = tl.Tensor(np.linspace(-1, 1, 12).reshape(4, 3), requires_grad=True)
        params = net.parameters() + [W]
        opt = {"SGD": lambda: O.SGD(params, lr=0.1), "momentum": lambda: O.SGD(params, lr=0.1, momentum=0.9),
               "Adam": lambda: O.Adam(params, lr=0.05)}[optimizer]()

        def step(X, y):
            if not zero_grad_last:
                opt.zero_grad()
            if when == "twice_before_forward":
                W.requires_grad_(False); W.requires_grad_(True)
            loss = CE(net(X) + X @ W, y)
            if when == "during_step":  # after the forward: the graph still reaches W
                W.requires_grad_(False)
            loss.backward()
            if when == "between_backward_and_step":
                W.requires_grad_(False)
            opt.step()
            W.requires_grad_(True)
            if zero_grad_last:
                opt.zero_grad()
            return loss
        return dict(step=step, params=params, probe=lambda: W.requires_grad)
    return make


@pytest.mark.parametrize("when,optimizer", [("twice_before_forward", "Adam"), ("between_backward_and_step", "momentum"),
                                            ("between_backward_and_step", "Adam")])
def test_a_tensor_frozen_and_unfrozen_inside_the_step_trains_as_eager(when, optimizer):
    assert same(_frozen(when, optimizer)).fallback_reason is None


@pytest.mark.parametrize("zero_grad_last", [False, True], ids=["zero_grad_first", "lr_in_the_seed"])
def test_a_tensor_frozen_after_the_forward_until_after_opt_step_is_not_updated_as_eager(zero_grad_last):
    same(_frozen("during_step", zero_grad_last=zero_grad_last), calls=3)


# ---- dicts and lists of the step's scope, guarded by value -------------------------------------

def _scoped(change):
    """A step reading `SETTINGS`, a closure dict; `change(settings, call)` between calls."""
    def make():
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)
        settings = {"lams": [0.01] + [0.0] * 299, "scale": 1.0, "clip": float("nan")}

        def step(X, y):
            opt.zero_grad()
            clip = settings["clip"]
            loss = CE(net(X), y) * settings["scale"] + settings["lams"][0] * (net[0].weight ** 2).sum()
            loss = loss if clip != clip else loss.clip(max=clip)  # NaN: no clipping
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters(), extra=lambda call: change(settings, call) or ())
    return make


def test_the_first_item_of_a_300_item_closure_list_changed_between_calls_is_used_as_eager():
    same(_scoped(lambda s, call: s["lams"].__setitem__(0, 0.5) if call == 2 else None))


def test_a_nan_setting_rebound_to_nan_between_calls_does_not_retrace_every_call():
    assert same(_scoped(lambda s, call: s.__setitem__("clip", float("nan")))).traces == 1


def test_a_list_of_weights_in_the_closure_rebound_to_another_weight_retraces():
    def make():
        net = _mlp()
        opt, weights = O.SGD(net.parameters(), lr=0.1), [net[0].weight]

        def step(X, y):
            opt.zero_grad(); loss = CE(net(X), y) + 0.01 * (weights[0] ** 2).sum(); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters(),
                    extra=lambda call: (weights.__setitem__(0, net[2].weight) if call == 2 else None, ())[1])
    assert same(make).traces == 2


# ---- a forward compiled alone, its result differentiated outside -------------------------------

def _train_through_forward(compiled, how):
    """Losses and parameters of 5 calls of a model compiled alone (tl.compile(model)), trained by
    hand around it; `how` says which calls differentiate its result, and how."""
    net = _mlp()
    forward, opt, seen = tl.compile(net) if compiled else net, O.SGD(net.parameters(), lr=0.1), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for call, (X, y) in enumerate(_batches()):
            opt.zero_grad()
            if how == "no_grad_first":
                with tl.no_grad() if call < 2 else tl.enable_grad():
                    loss = CE(forward(X), y)
            else:
                loss = CE(forward(X), y)
            if how == "tl_grad":
                for p, g in zip(net.parameters(), tl.grad(loss, net.parameters())):
                    p.grad = g
                opt.step()
            elif call >= 2:  # evaluated twice, then trained
                loss.backward(); opt.step()
            seen.append([np.array(loss.data)] + [p.data.copy() for p in net.parameters()])
    return seen


@pytest.mark.parametrize("how", ["no_grad_first"])
def test_a_compiled_forward_used_under_no_grad_then_trained_trains_as_eager(how):
    agree(_train_through_forward(False, how), _train_through_forward(True, how))


@pytest.mark.parametrize("how", ["inference_first", "tl_grad"])
def test_a_compiled_forward_evaluated_first_or_differentiated_by_tl_grad_trains_as_eager(how):
    agree(_train_through_forward(False, how), _train_through_forward(True, how))


# ---- what the step returns -----------------------------------------------------------------------

@dataclasses.dataclass
class _Report:
    loss: object
    correct: int


def _returning(make_result):
    """What a step returning make_result(loss, correct) gives on each of 3 calls, compiled."""
    net = _mlp()
    opt = O.SGD(net.parameters(), lr=0.1)

    def step(X, y):
        opt.zero_grad(); out = net(X); loss = CE(out, y); loss.backward(); opt.step()
        return make_result(loss, (out.argmax(1) == tl.Tensor(y)).sum().item())
    run = tl.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        return [run(X, y) for X, y in _batches(3)]


@pytest.mark.parametrize("kind", ["dataclass", "set", "dict_key"])
def test_a_count_returned_in_a_dataclass_a_set_or_as_a_dict_key_is_an_int_on_every_call(kind):
    results = _returning({"dataclass": lambda loss, n: _Report(loss, n), "set": lambda loss, n: (loss, {n}),
                          "dict_key": lambda loss, n: {n: loss}}[kind])
    counts = {"dataclass": lambda r: r.correct, "set": lambda r: next(iter(r[1])),
              "dict_key": lambda r: next(iter(r))}[kind]
    assert [type(counts(r)) for r in results] == [int] * 3


def test_a_tensor_made_by_tl_zeros_and_returned_can_be_written_into_as_eager():
    w = tl.Tensor(np.ones(3), requires_grad=True)

    def step(x):
        loss = (w * x).sum(); loss.backward()
        return loss, tl.zeros(3, dtype=F64)
    compiled = tl.compile(step)
    for _ in range(3):
        _, buffer = compiled(tl.Tensor(np.ones(3)))
        buffer.data[0] += 1.0  # (a replay's constant is read-only: the caller gets its own copy)
        assert buffer.data.tolist() == [1.0, 0.0, 0.0]
    assert compiled.fallback_reason is None


def test_a_write_into_the_data_of_a_tl_zeros_tensor_inside_the_step_runs_eagerly():
    def make():
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad()
            bias = tl.zeros(3, dtype=F64)
            bias.data[int(y[0])] = 1.0  # the batch's first label favoured: not a constant
            loss = CE(net(X) + bias, y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters())
    assert "in place" in same(make).fallback_reason
