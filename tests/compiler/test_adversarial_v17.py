"""Compiled steps against the same steps run eagerly, round 17: round 16's changes (constants
exempted by identity after a read, pow's int exponent, tolist() reads, np.random and helpers'
globals snapshotted, no_grad traces, TracedInts replaced in place); twins agree to 1e-12.

Found and fixed since, each failing before its fix:
- Silently stale: a small int from a count (`n // 2 + 1`, `int(n)`, the sum or an item of a
  `.tolist()`) is CPython's shared object, a constant of this package (reads.py no longer
  exempts small ints); a `.tolist()` list appended to or sorted, then returned (now eager).
- Effects replays skip: a helper's helper rebinding a `global` count, a third helper down
  changing a module-level dict, a classmethod or staticmethod changing its class (helpers are
  gone through at any depth, users' classes snapshotted).
- The traced call returned Counter({('correct', 3): 1}) for a Counter of a count; a list
  holding itself raised RecursionError on every call (now eager).
- pow: an int tensor to a negative int power raised numpy's error (now pow's own, as
  PyTorch refuses it); an exponent of 2**70 raised (now a float power again: inf).

Open (strict xfail): `min(1.0, 1.2 / loss.item())` (a clipping scale) is the step's own 1.0
while the loss is small, so it passes as a constant and the replay keeps it (Python control
flow on data: documented); the L2 penalty added after `data_loss.item()` runs eagerly (its
`** 2` is a small int: a needless fallback, results as eager).  Seen, not tested: a returned
list subclass whose __setitem__ refuses raises on the first call.

Holding, tested below: numpy draws in a custom tl.Function; helpers reading a module config;
dropout imported by name; steps with their own grad modes called under no_grad every other call;
int powers in float16/32/64, compiled.  Not tested: MC dropout, randn noise (replays) and
BatchNorm in train mode, manual SGD (eager) under no_grad; int tensors to int powers."""
import collections
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl

from tinygrad_l2.nn.layers import dropout
from twins import F64, agree

O, CE, NN = tl.optim, tl.nn.softmax_cross_entropy, tl.nn


def _mlp():
    return NN.Sequential(NN.Linear(4, 5, dtype=F64, rng=0), NN.Tanh(), NN.Linear(5, 3, dtype=F64, rng=1))


def _batches(calls=5, scales=None):
    rng = np.random.default_rng(5)
    return [(tl.Tensor(rng.standard_normal((6, 4)) * (scales[c] if scales else 1)), rng.integers(0, 3, 6))
            for c in range(calls)]


def _arrays(value):
    """A returned value (tensors, numbers, tuples or lists of them) as a flat list of arrays; a
    list of numbers is one array."""
    if isinstance(value, tl.Tensor):
        return [np.array(value.data)]
    if isinstance(value, (list, tuple)) and not isinstance(value[0], (tl.Tensor, list, tuple)):
        return [np.array(value, dtype=F64)]
    return [a for item in value for a in _arrays(item)] if isinstance(value, (list, tuple)) else [np.array(value, F64)]


def _both(build, observe, calls=5, scales=None, grad_mode=lambda call: True):
    """([eager's, compiled's] observe(result, parameters) after each call (call k under grad
    mode grad_mode(k)), the compiled function); build() -> (function, parameters)."""
    seen = []
    for compiled in (False, True):
        tl.manual_seed(0); np.random.seed(0)
        (fn, params), seen = build(), seen + [[]]
        run = tl.compile(fn) if compiled else fn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            for call, (X, y) in enumerate(_batches(calls, scales)):
                with tl.set_grad_enabled(grad_mode(call)):
                    seen[-1].append(observe(run(X, y), params))
    return seen, run


def _twins(build, **options):
    """Eager and compiled agree on every call's result and parameters: the compiled function."""
    seen, run = _both(build, lambda result, params: _arrays(result) + [p.data.copy() for p in params], **options)
    agree(*seen)
    return run


def _step(loss_of):
    """A plain SGD step on the MLP; loss_of(net, X, y) -> (loss, what the step returns)."""
    def build():
        net = _mlp(); opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad(); loss, result = loss_of(net, X, y); loss.backward(); opt.step()
            return result
        return step, net.parameters()
    return build


def _hits(out, y):
    return out.argmax(1) == tl.Tensor(y)


# ---- numbers computed from a read that are identical to a constant ------------------------------

@pytest.mark.xfail(strict=True, reason="min(1.0, 1.2 / v) is the step's own 1.0 while the loss is below "
                   "1.2: reads.py takes it for a constant and replays the scale 1.0 when later losses exceed 1.2")
def test_a_clipping_scale_computed_from_the_loss_read_is_used_as_eager():
    def build():
        net = _mlp(); opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad(); loss = CE(net(X), y); v = loss.item()
            (loss * min(1.0, 1.2 / v)).backward(); opt.step()
            return v
        return step, net.parameters()
    _twins(build, scales=[0.1, 0.1, 20, 20, 20])


SMALL_INTS_FROM_A_READ = {  # (the read the step returns, the term of the loss made from it)
    "floor_div_slice_bound": (lambda out, y: _hits(out, y).sum().item(), lambda out, n: (out[:n // 2 + 1] ** 2).mean()),
    "int_of_a_count": (lambda out, y: _hits(out, y).sum().item(), lambda out, n: out.sum() * int(n)),
    "sum_of_tolist_hits": (lambda out, y: _hits(out, y).tolist(), lambda out, h: (out[:sum(h) + 1] ** 2).mean()),
    "element_of_a_tolist": (lambda out, y: _hits(out, y).sum().reshape(1).tolist(), lambda out, c: out.sum() * c[0]),
}


@pytest.mark.parametrize("route", SMALL_INTS_FROM_A_READ)
def test_a_small_int_computed_from_a_count_read_and_given_to_an_op_is_used_as_eager(route):
    def loss_of(net, X, y):
        read, term = SMALL_INTS_FROM_A_READ[route]
        out = net(X); number = read(out, y); loss = CE(out, y) + term(out, number)
        return loss, (loss, number)
    _twins(_step(loss_of), scales=[0.1, 3, 1, 0.5, 2])


@pytest.mark.parametrize("change", [lambda p: p.append(-1.0), list.sort], ids=["appended", "sorted"])
def test_a_list_read_with_tolist_and_changed_before_it_is_returned_is_returned_as_eager(change):
    def loss_of(net, X, y):
        out = net(X); top = out.max(1).tolist(); change(top)
        return CE(out, y), (CE(out, y), top)
    _twins(_step(loss_of))


# ---- needless fallbacks after a read --------------------------------------------------------------

LAMBDA = 3e-4  # (no code here writes 3e-4: a .pyc shares one object among equal constants)


def _l2(params):
    return 0.5 * sum((p * p).sum() for p in params)


@pytest.mark.xfail(strict=True, reason="open, a needless fallback (results as eager): λ from the scope or a "
                   "helper's constant now passes, but the penalty's `** 2` after the read is a small int, "
                   "one object Python shares with any computed 2 (see the small-int test above)")
@pytest.mark.parametrize("penalty", ["module_level_lambda", "closure_lambda", "helpers_half"])
def test_the_l2_penalty_added_after_the_data_loss_is_read_replays(penalty):
    def build():
        net = _mlp(); opt = O.SGD(net.parameters(), lr=0.1); lam = 2e-3

        def step(X, y):
            opt.zero_grad(); data_loss = CE(net(X), y); reported = data_loss.item()
            if penalty == "helpers_half":
                loss = data_loss + 1e-3 * _l2(net.parameters())
            else:
                coefficient = LAMBDA if penalty == "module_level_lambda" else lam
                loss = data_loss + coefficient * sum((p ** 2).sum() for p in net.parameters())
            loss.backward(); opt.step()
            return loss, reported
        return step, net.parameters()
    assert _twins(build).fallback_reason is None


# ---- effects on module-level and class state a replay skips --------------------------------------

_CALLS, _STATS = 0, {"calls": 0}


def _count_call():
    global _CALLS
    _CALLS += 1


def _log(loss):  # (a helper calling a helper)
    _count_call()


def _track(loss):  # (a helper calling a helper calling a helper)
    _track_deeper()


def _track_deeper():
    _track_deepest()


def _track_deepest():
    _STATS["calls"] += 1


class _Tracker:
    calls, history = 0, []

    @classmethod
    def record(cls, loss):
        cls.calls += 1

    @staticmethod
    def keep(loss):
        _Tracker.history.append(loss.detach())


EFFECTS = {"helpers_helper_global_count": (_log, lambda: _CALLS),
           "three_helpers_down_dict": (_track, lambda: _STATS["calls"]),
           "classmethod_class_count": (_Tracker.record, lambda: _Tracker.calls),
           "staticmethod_class_list": (_Tracker.keep, lambda: len(_Tracker.history))}


def assert_the_helpers_effect_happens_every_call(helper, seen):
    """A step calling `helper(loss)`, 3 calls eagerly and compiled: what `seen()` counts rises by
    2 between the first and the last call in both."""
    def make():
        net = _mlp(); opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad(); loss = CE(net(X), y); helper(loss); loss.backward(); opt.step()
            return loss
        return step, net.parameters()
    (eager, compiled), _ = _both(make, lambda result, params: float(seen()), calls=3)
    assert compiled[-1] - compiled[0] == eager[-1] - eager[0] == 2


@pytest.mark.parametrize("effect", EFFECTS)
def test_a_helper_recording_the_loss_records_every_call(effect):
    assert_the_helpers_effect_happens_every_call(*EFFECTS[effect])


# ---- what the traced call returns ---------------------------------------------------------------

RETURNED = {"counter": lambda n: collections.Counter(correct=n),
            "list_holding_itself": lambda n: (lambda log: (log.append(log), log)[1])([n])}


@pytest.mark.parametrize("kind", RETURNED)
def test_the_compiled_step_returns_what_eager_returns_on_every_call(kind):
    def loss_of(net, X, y):
        out = net(X); loss = CE(out, y)
        return loss, RETURNED[kind](_hits(out, y).sum().item())
    try:
        (eager, compiled), _ = _both(_step(loss_of), lambda result, params: repr(result), calls=3)
    except RecursionError:  # (said briefly: its traceback takes pytest seconds to show)
        raise AssertionError("RecursionError where eager returns") from None
    assert compiled == eager


# ---- pow with an int exponent -------------------------------------------------------------------

def test_pow_refuses_an_int_tensor_to_a_negative_int_power_with_an_error_naming_pow():
    with pytest.raises(ValueError, match="^pow"):  # (PyTorch refuses it too; the package's "op: ..." form)
        tl.tensor([1, 2, 4]) ** -1


def test_pow_to_a_huge_int_exponent_is_a_float_power_as_before():
    with np.errstate(over="ignore"):  # (2.0 ** 2 ** 70 is inf)
        np.testing.assert_array_equal((tl.tensor([1.0, 2.0]) ** 2 ** 70).data, np.float32([1.0, 2.0]) ** float(2 ** 70))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, F64])
def test_int_powers_compiled_keep_the_dtype_and_the_gradient_of_eager(dtype):
    def loss_of(w, X):
        return (X * w ** 3).sum() + ((1 + w * w) ** -2).sum()

    def build():
        W = tl.Tensor(np.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3), requires_grad=True)
        opt = O.SGD([W], lr=0.01)

        def step(X, y):
            opt.zero_grad(); loss = loss_of(W, X[:2, :3].astype(dtype)); loss.backward(); opt.step()
            return loss
        return step, [W]
    seen, run = _both(build, lambda loss, params: [np.array(loss.data), params[0].grad.copy(), params[0].data.copy()])
    agree(*seen, rtol=10 * float(np.finfo(dtype).eps))
    assert run.fallback_reason is None and {a.dtype for row in seen[1] for a in row} == {np.dtype(dtype)}  # (as torch)
    W64 = tl.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    assert tl.gradcheck(lambda w: loss_of(w, tl.Tensor(np.linspace(0.5, 2, 6).reshape(2, 3))), [W64])


# ---- what holds: steps that replay ---------------------------------------------------------------

CONFIG = {"noise": 0.1, "weight_decay": 3e-4}


class _NumpyNoise(tl.Function):
    """z = x + σ·ε, ε drawn from numpy's global generator;  dz/dx = 1."""
    def forward(self, x):
        return x + self.scale * np.random.standard_normal(x.shape)

    def backward(self, g):
        return g


def _penalty(params):  # (a helper reading module-level settings through another helper)
    return CONFIG["weight_decay"] * _squares(params)


def _squares(params):
    return sum((p * p).sum() for p in params)


REPLAYED = {"custom_op_drawing_from_numpy": lambda net, X, y: CE(_NumpyNoise.apply(net(X), scale=CONFIG["noise"]), y),
            "helpers_reading_a_config": lambda net, X, y: CE(net(X), y) + _penalty(net.parameters()),
            "dropout_imported_by_name": lambda net, X, y: CE(dropout(net(X), 0.3), y)}


@pytest.mark.parametrize("loss_of", REPLAYED)
def test_a_step_drawing_from_numpy_in_its_op_or_calling_helpers_replays(loss_of):
    assert _twins(_step(lambda net, X, y: (REPLAYED[loss_of](net, X, y),) * 2)).fallback_reason is None


@pytest.mark.parametrize("where", ["enable_grad_inside_called_under_no_grad", "backward_and_step_under_no_grad"])
def test_a_step_with_its_own_grad_modes_trains_as_eager_and_replays(where):
    def build():
        net = _mlp(); opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            with tl.enable_grad():
                opt.zero_grad(); loss = CE(net(X), y)
            with tl.set_grad_enabled(where == "enable_grad_inside_called_under_no_grad"):
                loss.backward(); opt.step()
            return loss
        return step, net.parameters()
    run = _twins(build, grad_mode=lambda call: call % 2 == 0)
    assert run.fallback_reason is None and run.traces == 2
